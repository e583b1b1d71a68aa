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


def sa(catalog, i2i, **options):
    return r.SessionAware(catalog, r.SessionAware.Options(i2i=i2i, **options))


def draws(rec, make, n=300):
    return [rec.recommend(make(i)) for i in range(n)]


def test_random_covers_catalog_uniformly(catalog):
    out = draws(r.Random(catalog), lambda i: ctx([0], seed=i), 4000)
    assert set(out) <= set(range(200)) and len(set(out)) > 180
    counts = np.bincount(out, minlength=200)
    assert counts.max() < 4 * counts.mean()


def test_toppop_uses_catalog_popularity_then_log_counts(catalog):
    top = r.TopPop(catalog, r.TopPop.Options(top=5))
    expected = set(np.argsort(-catalog.popularity, kind="stable")[:5].tolist())
    assert set(draws(top, lambda i: ctx([0], seed=i))) == expected
    counts = np.zeros(200, dtype=np.int64)
    counts[[7, 8, 9]] = [10, 20, 30]
    assert set(draws(r.TopPop(catalog, r.TopPop.Options(top=3, log=counts)), lambda i: ctx([0], seed=i))) == {7, 8, 9}


def test_sticky_artist_stays_with_previous_artist(catalog):
    out = draws(r.StickyArtist(catalog), lambda i: ctx([3, 45], seed=i))
    assert {t % N_ARTISTS for t in out} == {45 % N_ARTISTS}
    assert len(set(out)) == 200 // N_ARTISTS


def test_indexed_uses_user_list_and_random_when_unknown(catalog):
    lists = np.array([[1, 2], [3, -1]], dtype=np.int32)
    rec = r.Indexed(catalog, r.Indexed.Options(lists=lists))
    assert set(draws(rec, lambda i: ctx([0], user=0, seed=i))) == {1, 2}
    assert set(draws(rec, lambda i: ctx([0], user=1, seed=i))) == {3}
    assert len(set(draws(rec, lambda i: ctx([0], user=99, seed=i)))) > 50


def test_contextual_draws_from_previous_tracks_list(catalog, i2i):
    rec = r.Contextual(catalog, r.Contextual.Options(i2i=i2i))
    assert set(draws(rec, lambda i: ctx([0, 50], seed=i))) == set(range(51, 61))
    empty = i2i.copy()
    empty[50] = -1
    assert len(set(draws(r.Contextual(catalog, r.Contextual.Options(i2i=empty)), lambda i: ctx([0, 50], seed=i)))) > 50


def test_i2i_history_anchor_weighted_by_time_first_unseen(catalog, i2i):
    rec = r.I2IHistory(catalog, r.I2IHistory.Options(i2i=i2i, history=10))
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


def test_session_aware_seed_strategy(catalog, i2i):
    rec = sa(catalog, i2i, top=5, strategy="seed")
    # anchored on the first track, not the previous one; heard tracks skipped, list order kept
    assert rec.recommend(ctx([10, 90, 11], [1.0, 0.0, 0.0])) == 12
    # the anchor's list exhausted -> TopPop, unheard
    heard = [10] + list(range(11, 21))
    top = set(np.argsort(-catalog.popularity, kind="stable")[:5].tolist())
    out = draws(rec, lambda i: ctx(heard, seed=i))
    assert set(out) <= top and not set(out) & set(heard)


def artist(t: int) -> int:
    return t % N_ARTISTS


def genre(t: int) -> int:
    return artist(t) % 4


def test_session_aware_starts_with_anchor_artist_then_explores_its_genre(catalog, i2i):
    rec = sa(catalog, i2i, first_artist_prior=0.9, fresh_start=0.7)
    first = rec.recommend(ctx([10]))
    assert artist(first) == 10 and first != 10  # the anchor's artist: prior 0.9 > a new artist's 0.7
    # the anchor's artist listened 0.6 on its replay: 0.6/0.8 * 0.8**2 = 0.48 < 0.7 -> a new artist,
    # the first of the anchor's i2i list (11, 12, ...) in the anchor's genre: 14
    assert rec.recommend(ctx([10, 30], [1.0, 0.6])) == 14
    # listed_artists: any trusts the list over the genre tag: its first new artist, 11
    rec = sa(catalog, i2i, first_artist_prior=0.9, fresh_start=0.7, listed_artists="any")
    assert rec.recommend(ctx([10, 30], [1.0, 0.6])) == 11
    with pytest.raises(ValueError, match="listed_artists"):
        sa(catalog, i2i, listed_artists="genre")


def test_session_aware_takes_new_artists_from_the_lists_of_liked_tracks(catalog, i2i):
    lists = i2i.copy()
    lists[10] = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]      # the anchor's: artist 11 first, 13 third
    lists[30] = [53, 73, 93, 113, 133, 153, 173, 193, 33, 13]  # a liked track's: all artist 13
    session = ctx([10, 30], [1.0, 0.6])   # 30 (the anchor's artist again) liked: 0.6 >= liked_time
    kw = dict(first_artist_prior=0.9, fresh_start=0.7, listed_artists="any")
    assert sa(catalog, lists, **kw).recommend(session) == 11   # the anchor's list alone
    by_session = sa(catalog, lists, new_artists="session", **kw)
    # artist 11: 1.0 (first on the anchor's list); 13: 1 / (1 + 2/20) + 0.6 (first on 30's): 13 wins,
    # and its track comes in the anchor's list order
    c = ctx([10, 30], [1.0, 0.6])
    assert by_session.recommend(c) == 13 and c.propensity == 1.0
    # a track listened below liked_time lends its list nothing
    assert by_session.recommend(ctx([10, 30], [1.0, 0.4])) == 11
    assert sa(catalog, lists, new_artists="session", liked_time=0.7, **kw).recommend(
        ctx([10, 30], [1.0, 0.6])) == 11
    # a short position_decay makes the anchor's first place decide
    assert sa(catalog, lists, new_artists="session", position_decay=0.1, **kw).recommend(
        ctx([10, 30], [1.0, 0.6])) == 11
    for bad in ({"new_artists": "liked"}, {"liked_time": 1.5}, {"position_decay": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            sa(catalog, lists, **bad)


def test_session_aware_replays_liked_artists_and_drops_skipped_ones(catalog, i2i):
    rec = sa(catalog, i2i, first_artist_prior=0.9, fresh_start=0.7)
    # new artists so far averaged 0.575; artist 2 got 0.95 (x0.8 = 0.76 beats it), artist 14 got 0.2
    out = rec.recommend(ctx([10, 14, 22], [1.0, 0.2, 0.95]))
    assert artist(out) == 2 and out not in (10, 14, 22)
    for seed in range(20):  # a skipped artist never comes back in the session
        tracks, times = [10], [1.0]
        rng = np.random.default_rng(seed)
        for _ in range(40):
            t = rec.recommend(ctx(tracks, times, seed=seed))
            assert t not in tracks
            skipped = {artist(x) for x, y in zip(tracks[1:], times[1:]) if y == 0.0}
            assert artist(t) not in skipped
            tracks.append(t)
            times.append(float(rng.choice([0.0, 0.5, 0.9])))


def test_session_aware_stays_in_anchor_genre_before_toppop(catalog, i2i):
    rec = sa(catalog, i2i)
    tracks, times = [10], [1.0]
    for _ in range(49):  # genre 2 has artists 2, 6, 10, 14, 18: 50 tracks
        t = rec.recommend(ctx(tracks, times))
        assert genre(t) == genre(10) and t not in tracks
        tracks.append(t)
        times.append(0.9)
    top = set(np.argsort(-catalog.popularity, kind="stable")[:100].tolist())
    assert rec.recommend(ctx(tracks, times)) in top - set(tracks)  # genre used up: TopPop


def test_build_rejects_bad_config(catalog, tmp_path):
    with pytest.raises(ValueError, match="kind"):
        r.build("x", {"kind": "nope"}, catalog, tmp_path)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['top'\]"):
        r.build("x", {"kind": "random", "top": 3}, catalog, tmp_path)
    with pytest.raises(ValueError, match="missing"):
        r.build("x", {"kind": "contextual"}, catalog, tmp_path)


# --- propensities: the probability of the returned track, logged for off-policy evaluation ---

def _propensity_matches_frequency(rec, make, n=4000):
    """Every draw logs one propensity per track, and the propensities are the frequencies."""
    seen: dict[int, float] = {}
    counts: dict[int, int] = {}
    for i in range(n):
        c = make(i)
        t = rec.recommend(c)
        assert c.propensity is not None and 0.0 < c.propensity <= 1.0
        assert seen.setdefault(t, c.propensity) == pytest.approx(c.propensity)  # a function of the context
        counts[t] = counts.get(t, 0) + 1
    for t, p in seen.items():
        sd = (p * (1 - p) / n) ** 0.5
        assert abs(counts[t] / n - p) <= 5 * sd + 1e-9, (t, counts[t] / n, p)
    return seen


def test_propensities_of_the_uniform_recommenders(catalog, i2i):
    c = ctx([0]); r.Random(catalog).recommend(c)
    assert c.propensity == 1.0 / 200
    c = ctx([0]); r.TopPop(catalog, r.TopPop.Options(top=5)).recommend(c)
    assert c.propensity == 1.0 / 5
    c = ctx([3, 45]); r.StickyArtist(catalog).recommend(c)
    assert c.propensity == 1.0 / (200 // N_ARTISTS)
    c = ctx([3, 45]); r.Contextual(catalog, r.Contextual.Options(i2i=i2i)).recommend(c)
    assert c.propensity == 1.0 / 10
    lists = np.array([[4, 5, 4, -1]], dtype=np.int32)   # a repeated track counts twice
    got = _propensity_matches_frequency(r.Indexed(catalog, r.Indexed.Options(lists=lists)), lambda i: ctx([0], user=0, seed=i))
    assert got == {4: pytest.approx(2 / 3), 5: pytest.approx(1 / 3)}


def test_i2i_history_propensity_sums_anchor_shares(catalog, i2i):
    # anchors 0 (weight 0.2) and 50 (weight 0.6): first unseen of 0's list is 1; of 50's, 51;
    # an anchor listed twice adds its weights (0.2 + 0.2 of 0's)
    history = [[0, 0.2], [50, 0.6], [0, 0.2]]
    got = _propensity_matches_frequency(r.I2IHistory(catalog, r.I2IHistory.Options(i2i=i2i)),
                                        lambda i: ctx([50], times=[1.0], history=history, seed=i))
    assert got == {1: pytest.approx(0.4), 51: pytest.approx(0.6)}


def test_session_aware_greedy_is_certain_and_fallback_is_its_start_share(catalog, i2i):
    rec = sa(catalog, i2i, top=5, strategy="seed")
    c = ctx([0, 1]); t = rec.recommend(c)
    assert (t, c.propensity) == (2, 1.0)
    # every listed track heard: TopPop from a random start, skipping heard ones
    heard = [0] + list(range(1, 11))
    top = rec.top
    heard += [top[1], top[2]]   # two consecutive top tracks heard: the next one takes their starts
    assert not {top[0], top[3], top[4]} & set(heard)
    got = _propensity_matches_frequency(rec, lambda i: ctx(heard, seed=i))
    expected = {top[0]: 1 / 5, top[3]: 3 / 5, top[4]: 1 / 5}
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("explore_from", ["list", "catalog"])
def test_session_aware_exploration_logs_the_mixture(catalog, i2i, explore_from):
    rec = sa(catalog, i2i, top=5, strategy="seed", explore=0.2, explore_from=explore_from)
    got = _propensity_matches_frequency(rec, lambda i: ctx([0, 1], seed=i), n=6000)
    if explore_from == "list":   # candidates: 0's list minus heard 1 -> 2..10 (9 tracks)
        assert got[2] == pytest.approx(0.8 + 0.2 / 9)
        assert set(got) == set(range(2, 11))
        assert all(got[t] == pytest.approx(0.2 / 9) for t in range(3, 11))
    else:
        assert got[2] == pytest.approx(0.8 + 0.2 / 200)
        assert all(p == pytest.approx(0.2 / 200) for t, p in got.items() if t != 2)
    greedy = sa(catalog, i2i, top=5, strategy="seed")
    assert [rec.recommend(ctx([0, 1], seed=i)) == greedy.recommend(ctx([0, 1], seed=i))
            for i in range(200)].count(True) > 140   # mostly the greedy pick


def test_session_aware_without_exploration_answers_as_before(catalog, i2i):
    # explore: 0 draws nothing: the same answers whatever the generator
    rec = sa(catalog, i2i)
    assert {rec.recommend(ctx([0, 1, 2], seed=i)) for i in range(50)} == {rec.recommend(ctx([0, 1, 2]))}
    with pytest.raises(ValueError, match="explore"):
        sa(catalog, i2i, explore=1.5)
    with pytest.raises(ValueError, match="explore_from"):
        sa(catalog, i2i, explore_from="genre")


def test_recommenders_share_the_lists_and_the_catalogs_derived_tables(catalog, i2i, tmp_path):
    # start-up time and memory per worker (issue 10): two SessionAware arms over one model read
    # the lists where they are (no private copy of the table) and share what the catalog gives
    # every instance; two arms naming one file get one table (one memory map, counted once)
    a, b = sa(catalog, i2i), sa(catalog, i2i, genre_artists=3, strategy="seed")
    assert np.shares_memory(a.i2i, i2i) and np.shares_memory(b.i2i, i2i)
    assert a.by_artist is b.by_artist and a.artist is b.artist is r.StickyArtist(catalog).artist
    assert all(len(g) <= 3 for g in b.genre_artists) and any(len(g) > 3 for g in a.genre_artists)
    from service.artifacts import Tables
    np.save(tmp_path / "i2i.npy", i2i.astype(np.int32))
    tables = Tables(tmp_path, len(catalog))
    built = [r.build(name, spec, catalog, tmp_path, tables) for name, spec in (
        ("ctx", {"kind": "contextual", "i2i": "i2i.npy"}),
        ("sa", {"kind": "session_aware", "i2i": str(tmp_path / "i2i.npy")}))]
    assert np.shares_memory(built[0].i2i.table, built[1].i2i)
    assert built[1].recommend(ctx([0, 1])) == a.recommend(ctx([0, 1]))


def test_session_aware_reads_padded_rows_like_full_ones(catalog, i2i):
    # rows shorter than the table (-1 padded) give the same answers as the same lists unpadded
    short = {t: i2i[t, : 3 + t % 8].tolist() for t in range(len(i2i))}
    padded = np.full((len(i2i), 12), -1, dtype=np.int32)
    for t, recs in short.items():
        padded[t, : len(recs)] = recs
    wide, narrow = sa(catalog, padded), sa(catalog, padded[:, :10].copy())
    for first in range(0, 200, 7):
        tracks = [first]
        for _ in range(12):
            c1, c2 = ctx(tracks, seed=first), ctx(tracks, seed=first)
            t = wide.recommend(c1)
            assert t == narrow.recommend(c2) and c1.propensity == c2.propensity
            assert 0 <= t < 200 and t not in tracks  # padding is never served, a track never repeated
            tracks.append(t)


def test_catalog_orders_shared_by_recommenders_match_their_definition(tmp_path):
    # tracks by popularity per artist, and per genre the artists by their most popular track,
    # are made with sorts (no per-track Python loop at start-up): equal to the loop that defines
    # them, on a catalog with tied popularities, artists across genres and a genre with no artist
    import json

    rng = np.random.default_rng(3)
    path = tmp_path / "tracks.json"
    with path.open("w") as f:
        for t in range(3000):
            f.write(json.dumps({"track": t, "artist": f"a{rng.integers(0, 300)}", "title": "x",
                                "genre": f"g{rng.integers(0, 8)}" if t else "lonely",
                                "popularity": float(rng.integers(0, 5)) if t else 0.0}) + "\n")
    cat = load_catalog(path)
    order = sorted(range(len(cat)), key=lambda t: (-cat.popularity[t], t))
    by_artist = [[] for _ in cat.artist_names]
    genre_artists = [[] for _ in cat.genre_names]
    for t in order:
        a = int(cat.artist[t])
        if not by_artist[a]:
            genre_artists[int(cat.genre[t])].append(a)
        by_artist[a].append(t)
    assert cat.popularity_order.tolist() == order
    assert cat.artist_tracks_by_popularity == by_artist
    assert cat.genre_artists_by_popularity == genre_artists and [] in genre_artists
