"""Each recommender's behaviour on the fixture catalog (track t: artist t % 20, genre by artist;
i2i list of t: t+1, t+2, ..., t+10)."""
from __future__ import annotations

import random

import numpy as np
import pytest

from service import recommenders as r
from service.catalog import load_catalog

from svc_fixtures import N_ARTISTS, i2i_lists, write_catalog


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return load_catalog(write_catalog(tmp_path_factory.mktemp("cat") / "tracks.json"))


@pytest.fixture(scope="module")
def i2i():
    lists = i2i_lists()
    table = np.full((len(lists), 10), -1, dtype=np.int32)
    for t, recs in lists.items():
        table[t] = recs
    return table


def ctx(tracks, times=None, history=None, user=1, seed=0):
    times = times or [1.0] + [0.5] * (len(tracks) - 1)
    history = history if history is not None else [[t, x] for t, x in zip(tracks, times)]
    return r.Context(user, list(tracks), list(times), history, random.Random(seed))


def draws(rec, make, n=300):
    return [rec.recommend(make(i)) for i in range(n)]


def test_random_covers_catalog_uniformly(catalog):
    out = draws(r.Random(catalog), lambda i: ctx([0], seed=i), 4000)
    assert set(out) <= set(range(200)) and len(set(out)) > 180
    counts = np.bincount(out, minlength=200)
    assert counts.max() < 4 * counts.mean()


def test_toppop_uses_catalog_popularity_then_log_counts(catalog):
    top = r.TopPop(catalog, top=5)
    expected = set(np.argsort(-catalog.popularity, kind="stable")[:5].tolist())
    assert set(draws(top, lambda i: ctx([0], seed=i))) == expected
    counts = np.zeros(200, dtype=np.int64)
    counts[[7, 8, 9]] = [10, 20, 30]
    assert set(draws(r.TopPop(catalog, top=3, counts=counts), lambda i: ctx([0], seed=i))) == {7, 8, 9}


def test_sticky_artist_stays_with_previous_artist(catalog):
    out = draws(r.StickyArtist(catalog), lambda i: ctx([3, 45], seed=i))
    assert {t % N_ARTISTS for t in out} == {45 % N_ARTISTS}
    assert len(set(out)) == 200 // N_ARTISTS


def test_indexed_uses_user_list_and_random_when_unknown(catalog):
    lists = np.array([[1, 2], [3, -1]], dtype=np.int32)
    rec = r.Indexed(catalog, lists)
    assert set(draws(rec, lambda i: ctx([0], user=0, seed=i))) == {1, 2}
    assert set(draws(rec, lambda i: ctx([0], user=1, seed=i))) == {3}
    assert len(set(draws(rec, lambda i: ctx([0], user=99, seed=i)))) > 50


def test_contextual_draws_from_previous_tracks_list(catalog, i2i):
    rec = r.Contextual(catalog, i2i)
    assert set(draws(rec, lambda i: ctx([0, 50], seed=i))) == set(range(51, 61))
    empty = i2i.copy()
    empty[50] = -1
    assert len(set(draws(r.Contextual(catalog, empty), lambda i: ctx([0, 50], seed=i)))) > 50


def test_i2i_history_anchor_weighted_by_time_first_unseen(catalog, i2i):
    rec = r.I2IHistory(catalog, i2i, history=10)
    # only track 20 was listened (>0): it is always the anchor; 21, 22 are heard: 23 is first unseen
    history = [[30, 0.0], [20, 1.0], [21, 0.0], [22, 0.0]]
    assert set(draws(rec, lambda i: ctx([21, 22], [1.0, 0.0], history, seed=i))) == {23}
    # anchors drawn in proportion to time: 0.9 vs 0.1
    history = [[100, 0.9], [150, 0.1]]
    out = draws(rec, lambda i: ctx([150], [0.1], history, seed=i), 2000)
    assert set(out) == {101, 151}
    assert 0.85 < out.count(101) / len(out) < 0.95
    # history beyond the window is ignored; nothing listened -> Random
    old = [[5, 1.0]] + [[60 + j, 0.0] for j in range(10)]
    assert len(set(draws(rec, lambda i: ctx([69], [0.0], old, seed=i)))) > 50


def test_session_aware_seed_behaviour(catalog, i2i):
    rec = r.SessionAware(catalog, i2i, top=5, like_threshold=None, max_artist_plays=None,
                         tired_threshold=0.0, genre_fallback=False)
    # anchored on the first track, not the previous one; heard tracks skipped
    assert rec.recommend(ctx([10, 90, 11], [1.0, 0.0, 0.0])) == 12
    # the anchor's list exhausted -> TopPop, unheard
    heard = [10] + list(range(11, 21))
    top = set(np.argsort(-catalog.popularity, kind="stable")[:5].tolist())
    out = draws(rec, lambda i: ctx(heard, seed=i))
    assert set(out) <= top and not set(out) & set(heard)


def test_session_aware_skips_overplayed_and_tired_artists(catalog, i2i):
    rec = r.SessionAware(catalog, i2i, top=5, like_threshold=None, max_artist_plays=2,
                         tired_threshold=0.3, genre_fallback=False)
    # 10's list starts 11, 12, 13...; artist of 11 played twice (31, 51 share artist 11) -> skipped
    assert rec.recommend(ctx([10, 31, 51], [1.0, 0.9, 0.9])) == 12
    # artist of 11 once but its last track listened 0.1 -> tired -> skipped
    assert rec.recommend(ctx([10, 31], [1.0, 0.1])) == 12
    # once and liked -> allowed
    assert rec.recommend(ctx([10, 31], [1.0, 0.9])) == 11


def test_session_aware_follows_liked_tracks_then_genre(catalog, i2i):
    rec = r.SessionAware(catalog, i2i, top=5, like_threshold=0.8, max_artist_plays=None,
                         tired_threshold=0.0, genre_fallback=True)
    heard = [10] + list(range(11, 21))  # the anchor's list is used up
    times = [1.0] + [0.1] * 10
    times[5] = 0.95  # track 15 was liked -> its list follows: 16..20 heard, so 21
    assert rec.recommend(ctx(heard, times)) == 21
    # nothing liked and list exhausted -> the anchor's genre's most popular unheard track
    out = rec.recommend(ctx(heard, [1.0] + [0.1] * 10))
    assert catalog.genre[out] == catalog.genre[10] and out not in heard
    liked = r.SessionAware(catalog, i2i, anchor="liked", like_threshold=0.8)
    assert liked.recommend(ctx([10, 50, 70], [1.0, 0.9, 0.85])) == 71  # the latest liked track anchors


def test_build_rejects_bad_config(catalog, tmp_path):
    with pytest.raises(ValueError, match="kind"):
        r.build("x", {"kind": "nope"}, catalog, tmp_path)
    with pytest.raises(ValueError, match="unknown options"):
        r.build("x", {"kind": "random", "top": 3}, catalog, tmp_path)
    with pytest.raises(ValueError, match="missing"):
        r.build("x", {"kind": "contextual"}, catalog, tmp_path)
