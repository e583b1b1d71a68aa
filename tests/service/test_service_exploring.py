"""The exploring policy (kind `exploring`): every pick's logged propensity is the frequency it
is served with (checked by sampling), the share follows the listener's level, the table and
the learned shares come from the version beside the lists, and a bad table is refused clearly."""
from __future__ import annotations

import collections
import json
import random

import numpy as np
import pytest

from formats import learned as learned_format
from service import recommenders as r
from service.artifacts import Tables
from service.catalog import load_catalog

from svc_fixtures import N_ARTISTS, write_catalog


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return load_catalog(write_catalog(tmp_path_factory.mktemp("cat") / "tracks.json"))


@pytest.fixture(scope="module")
def version(tmp_path_factory, catalog):
    """A learned version's folder: random lists and a random exploration table over the catalog."""
    rng = np.random.default_rng(3)
    n = len(catalog)
    lists = rng.integers(0, n, size=(n, 20)).astype(np.int32)
    cand = np.stack([rng.permutation(N_ARTISTS)[:8] for _ in range(N_ARTISTS)]).astype(np.int32)
    weight = (rng.random(cand.shape) + 0.05).astype(np.float32)
    cand[:, -2:], weight[:, -2:] = -1, 0.0   # padded rows
    return learned_format.write(tmp_path_factory.mktemp("v") / "version", lists,
                                policy={"explore_levels": "0.3:0.45 1:0.05", "other_kinds_key": 1},
                                learner={"name": "t", "learner": "t", "config": {}, "window": {}, "figures": {}},
                                explore=(cand, weight))


def exploring(catalog, version, **options):
    spec = {"kind": "exploring", "i2i": str(version / "i2i.npy"), "listed_artists": "any",
            "new_artists": "session", **options}
    return r.build("x", spec, catalog, version, Tables(version, len(catalog)))


def contexts(rec, anchor: int, liked: float):
    """A session that disliked the anchor's artist's replay and its first tries (the greedy rule
    moves on to a new artist), the last try listened `liked` (its row joins `table_rows: session`)."""
    lists = rec.i2i
    own = next(t for t in rec.by_artist[rec.artist[anchor]] if t != anchor)
    tries = [int(x) for x in lists[anchor][:4] if rec.artist[int(x)] != rec.artist[anchor]][:3]
    tracks = [anchor, own] + tries
    return tracks, [1.0, 0.0] + [0.0] * (len(tries) - 1) + [liked]


@pytest.mark.parametrize("rows, explore_at, levels", [("anchor", "new_artist", None), ("session", "any", None),
                                                       ("anchor", "new_artist", "0.5:0.3 1:0.1")])
def test_a_logged_propensity_is_the_frequency_the_policy_serves_the_track_with(catalog, version, rows,
                                                                                 explore_at, levels):
    rec = exploring(catalog, version, explore=0.4, table_rows=rows, explore_at=explore_at, explore_levels=levels)
    rng = np.random.default_rng(0)
    for trial in range(3):
        anchor = int(rng.integers(len(catalog)))
        tracks, times = contexts(rec, anchor, 0.9 if rows == "session" else 0.0)
        counts: collections.Counter = collections.Counter()
        logged: dict[int, float] = {}
        draws = 4000
        for i in range(draws):
            c = r.Context(1, tracks, times, [], random.Random(i))
            t = rec.recommend(c)
            counts[t] += 1
            logged[t] = c.propensity
            assert c.propensity == rec.probability(r.Context(1, tracks, times, [], 0), t)
        assert len(counts) > 2, "the context explored: the check covers the mixture, not the greedy rule alone"
        assert sum(logged.values()) == pytest.approx(1.0)
        for t, n in counts.items():   # within 5 binomial standard errors of the logged probability
            p = logged[t]
            assert abs(n / draws - p) < 5 * np.sqrt(p * (1 - p) / draws) + 1e-9, (t, n / draws, p)


def test_the_share_follows_the_sessions_mean_listen(catalog, version):
    rec = exploring(catalog, version, explore=0.4, explore_levels="0.3:0.45 1:0.05", explore_at="any")
    tracks, _ = contexts(rec, 5, 0.0)
    low = [1.0] + [0.1] * (len(tracks) - 1)      # a listener who gives little to anything: mean 0.1
    high = [1.0, 0.0] + [0.9] * (len(tracks) - 2)
    for times, share in ((low, 0.45), (high, 0.05)):
        c = r.Context(1, tracks, times, [], 0)
        greedy, eps = rec._plan(c)[2], rec._plan(c)[3]
        assert eps == share
        assert rec.probability(c, greedy) >= 1 - share


def test_the_table_and_the_learned_shares_come_from_beside_the_lists(catalog, version):
    rec = exploring(catalog, version, explore=0.4)
    assert rec.x_levels == [(0.3, 0.45), (1.0, 0.05)]       # policy.json's explore_levels
    assert len(rec.x_rows) == N_ARTISTS and all(len(row) == 6 for row in rec.x_rows)
    own = exploring(catalog, version, explore=0.4, explore_levels="1:0.2")
    assert own.x_levels == [(1.0, 0.2)]                       # the config wins over the version
    # SessionAware declares no learned explore_levels: policy.json's key is not forced on it
    sa = r.build("s", {"kind": "session_aware", "i2i": str(version / "i2i.npy")}, catalog, version)
    assert isinstance(sa, r.SessionAware)


def test_lists_without_a_table_are_served_greedily(catalog, version, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "i2i.npy").write_bytes((version / "i2i.npy").read_bytes())
    rec = exploring(catalog, bare, explore=0.4)
    tracks, times = contexts(rec, 7, 0.0)
    for i in range(50):
        c = r.Context(1, tracks, times, [], random.Random(i))
        rec.recommend(c)
        assert c.propensity in (1.0,) or c.propensity < 0.05   # greedy, or its TopPop fallback share


@pytest.mark.parametrize("table, says", [
    ({"cand": np.zeros((3, 2), np.int32), "weight": np.ones((3, 2), np.float32)}, "another world's table"),
    ({"cand": np.full((N_ARTISTS, 2), N_ARTISTS, np.int32), "weight": np.ones((N_ARTISTS, 2), np.float32)},
     "artist codes must be in"),
    ({"cand": np.zeros((N_ARTISTS, 2), np.int32), "weight": np.ones((N_ARTISTS, 3), np.float32)}, "one shape"),
    ({"cand": np.full((N_ARTISTS, 2), -1, np.int32), "weight": np.ones((N_ARTISTS, 2), np.float32)},
     "a pad (-1) carries weight"),
    ({"cand": np.zeros((N_ARTISTS, 2), np.int32), "weight": -np.ones((N_ARTISTS, 2), np.float32)}, ">= 0"),
    ({"wrong": np.zeros(3)}, "`cand` and `weight` expected"),
])
def test_a_bad_table_is_refused_with_what_is_wrong_and_the_fix(catalog, version, tmp_path, table, says):
    bad = tmp_path / "bad.npz"
    np.savez(bad, **table)
    with pytest.raises(r.OptionError) as e:
        exploring(catalog, version, explore_table=str(bad))
    assert "recommender 'x' (exploring)" in str(e.value) and "'explore_table'" in str(e.value)
    assert says in str(e.value) and "learner `artist`" in str(e.value)


def test_a_missing_table_or_bad_levels_are_refused(catalog, version, tmp_path):
    with pytest.raises(r.OptionError, match="explore_table.*unreadable"):
        exploring(catalog, version, explore_table=str(tmp_path / "none.npz"))
    with pytest.raises(r.OptionError, match="rising edges"):
        exploring(catalog, version, explore_levels="1:0.2 0.5:0.1")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "i2i.npy").write_bytes((version / "i2i.npy").read_bytes())
    (tmp_path / "v" / "policy.json").write_text(json.dumps({"explore_levels": "0.5:1.5"}))
    with pytest.raises(r.OptionError, match="shares in"):
        exploring(catalog, tmp_path / "v")
