"""Pairs as the course builds them, and the three splits, on a hand-written log."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.data.events import sessionize
from training.learning.pairs import PairsError, build_pairs, split_pairs


def events(rows):
    """rows: (user, [(track, time), ...]) sessions, played one after another."""
    out, ts = [], 0
    for user, session in rows:
        for i, (track, time) in enumerate(session):
            ts += 10
            out.append({"message": "last" if i == len(session) - 1 else "next", "timestamp": ts,
                        "user": user, "track": track, "time": time, "latency": 0.0,
                        "recommendation": None, "experiments": {}})
    df = pd.DataFrame(out)
    df["recommendation"] = pd.array([None] * len(df), dtype="Int64")
    return df


LOG = events([
    (1, [(10, 1.0), (11, 0.5), (12, 0.25), (11, 0.0)]),   # 11 replayed: time 0
    (2, [(20, 1.0), (21, 0.75)]),
    (1, [(30, 1.0), (31, 0.1), (32, 0.9)]),
])
ARTIST = np.zeros(40, dtype=np.int64)
ARTIST[[10, 12]] = 1          # 10 and 12 share an artist; 11 another; 30..32 a third
ARTIST[[11]] = 2
ARTIST[[30, 31, 32]] = 3
ARTIST[[20, 21]] = [4, 5]     # user 2: two artists


def test_first_track_context_as_course():
    p = build_pairs(sessionize(LOG), "first", artist=ARTIST)
    got = list(zip(p["context"], p["target"], [round(float(x), 2) for x in p["time"]]))
    assert got == [(10, 11, 0.5), (10, 12, 0.25), (10, 11, 0.0), (30, 31, 0.1), (30, 32, 0.9),
                   (20, 21, 0.75)]
    assert list(p["repeat"]) == [False, False, True, False, False, False]
    # plays of the target's artist earlier in the session (the first track counts)
    assert list(p["artist_plays"]) == [0, 1, 1, 1, 2, 0]
    assert list(p["user"]) == [1, 1, 1, 1, 1, 2]


def test_previous_track_context():
    p = build_pairs(sessionize(LOG), "previous")
    assert list(zip(p["context"], p["target"])) == [(10, 11), (11, 12), (12, 11), (30, 31), (31, 32),
                                                     (20, 21)]
    assert (p["artist_plays"] == 0).all()          # no catalog given


def big_pairs(n_users=50, sessions=4, length=5, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(u, [(int(t), 0.5) for t in rng.integers(100, size=length)])
            for s in range(sessions) for u in rng.permutation(n_users)]
    return build_pairs(sessionize(events(rows)), "first")


@pytest.mark.parametrize("how", ["random", "by_user", "by_time"])
def test_splits_partition_and_report_sizes(how):
    p = big_pairs()
    sp = split_pairs(p, how, val=0.1, test=0.2, seed=3)
    sizes = sp.sizes()
    assert sum(sizes.values()) == len(p)
    assert sizes["train"] > sizes["test"] > sizes["val"] > 0
    key = ["session_id", "context", "target", "timestamp"]
    parts = [set(map(tuple, d[key].to_numpy())) for d in (sp.train, sp.val, sp.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    if how == "by_user":
        users = [set(d["user"]) for d in (sp.train, sp.val, sp.test)]
        assert not (users[0] & users[1]) and not (users[0] & users[2]) and not (users[1] & users[2])
    if how == "by_time":
        assert sp.train["timestamp"].max() < sp.val["timestamp"].min()
        assert sp.val["timestamp"].max() < sp.test["timestamp"].min()
    again = split_pairs(p, how, val=0.1, test=0.2, seed=3)
    assert again.train.equals(sp.train)


def test_random_split_is_the_course_80_10_10():
    p = big_pairs()
    sizes = split_pairs(p, "random", seed=0).sizes()
    assert abs(sizes["test"] - 0.1 * len(p)) <= 1 and abs(sizes["val"] - 0.1 * len(p)) <= 1


def test_bad_options_and_too_little_data():
    p = big_pairs()
    with pytest.raises(PairsError, match="unknown split"):
        split_pairs(p, "by_moon")
    with pytest.raises(PairsError, match="sum below 1"):
        split_pairs(p, "random", val=0.5, test=0.5)
    with pytest.raises(PairsError, match="unknown context"):
        build_pairs(sessionize(LOG), "last")
    with pytest.raises(PairsError, match="too few sessions"):
        split_pairs(p.head(2), "random")


def test_session_context_pairs_liked_tracks_with_their_session():
    log = events([(1, [(10, 1.0), (11, 0.8), (12, 0.2), (13, 0.9), (11, 0.0)]),   # 11 replayed last
                  (2, [(20, 1.0), (21, 0.4)])])
    p = build_pairs(sessionize(log), "session", artist=np.arange(40), liked_time=0.5)
    got = sorted(zip(p["context"], p["target"], [round(float(x), 2) for x in p["time"]], p["repeat"]))
    # the first-track pairs, then 11 and 13 (liked, not replays) as contexts of the other
    # recommended tracks of their session; 12 (0.2) and 21 (0.4) are no context; no self-pairs
    assert got == sorted([(10, 11, 0.8, False), (10, 12, 0.2, False), (10, 13, 0.9, False), (10, 11, 0.0, True),
                          (20, 21, 0.4, False),
                          (11, 12, 0.2, False), (11, 13, 0.9, False),
                          (13, 11, 0.8, False), (13, 12, 0.2, False), (13, 11, 0.0, True)])
    # window 1: only neighbours (and every first-track pair)
    p1 = build_pairs(sessionize(log), "session", artist=np.arange(40), window=1)
    extra = sorted((c, t) for c, t in zip(p1["context"], p1["target"]) if c not in (10, 20))
    assert extra == [(11, 12), (13, 11), (13, 12)]



def test_session_pairs_come_in_play_order_whatever_the_clock_logged():
    """A day played again logs other milliseconds (in-process, a session's events often share
    one): the pairs, and so the fit's batches, must not depend on them."""
    log = events([(1, [(10, 1.0), (11, 0.8), (12, 0.9), (13, 0.7)]), (2, [(20, 1.0), (21, 0.6), (22, 0.9)])])
    again = log.copy()
    again["timestamp"] = [0, 0, 0, 0, 5, 5, 5]         # every session within one millisecond
    a = build_pairs(sessionize(log), "session", artist=np.arange(40))
    b = build_pairs(sessionize(again), "session", artist=np.arange(40))
    cols = ["context", "target", "time", "session_id"]
    assert a[cols].equals(b[cols])
    # within a session, by the target's place: 11's pairs, then 12's, then 13's
    assert a.loc[a["session_id"] == 0, "target"].tolist() == [11, 11, 11, 12, 12, 12, 13, 13, 13]

DUEL_LOG = events([
    # anchor 10 (artist 1); new artists 11 (0.5), 20 (0.9), 21 (0.3); 12 is the anchor's own
    # artist; 11 again is a replay (discounted), never in a duel
    (1, [(10, 1.0), (11, 0.5), (20, 0.9), (12, 0.8), (21, 0.3), (11, 0.2)]),
    # two new artists within the gap (0.5 vs 0.52): no duel
    (2, [(30, 1.0), (20, 0.5), (21, 0.52)]),
])
DUEL_ARTIST = np.zeros(40, dtype=np.int64)
DUEL_ARTIST[[10, 12]] = 1
DUEL_ARTIST[11], DUEL_ARTIST[20], DUEL_ARTIST[21], DUEL_ARTIST[30] = 2, 4, 5, 3


def test_duels_compare_new_artists_of_one_session_by_hand():
    from training.learning.pairs import build_duels, first_tracks
    ses = sessionize(DUEL_LOG)
    pairs = build_pairs(ses, "session", artist=DUEL_ARTIST)
    d = build_duels(pairs, first_tracks(ses), DUEL_ARTIST, min_gap=0.05)
    got = sorted(zip(d["context"], d["winner"], d["loser"], [round(float(w), 2) for w in d["weight"]]))
    # session 1: 20 (0.9) > 11 (0.5) > 21 (0.3); every pair once, weighted by the gap
    assert got == [(10, 11, 21, 0.2), (10, 20, 11, 0.4), (10, 20, 21, 0.6)]
    # the same from the first-track pairs: duels depend on the anchor rows only
    d_first = build_duels(build_pairs(ses, "first", artist=DUEL_ARTIST), first_tracks(ses), DUEL_ARTIST)
    assert sorted(zip(d_first["winner"], d_first["loser"])) == [(11, 21), (20, 11), (20, 21)]


def test_duels_of_a_split_part_stay_in_it():
    from training.learning.pairs import build_duels, first_tracks
    ses = sessionize(DUEL_LOG)
    pairs = build_pairs(ses, "first", artist=DUEL_ARTIST)
    only_user2 = pairs[pairs["user"] == 2]
    assert len(build_duels(only_user2, first_tracks(ses), DUEL_ARTIST)) == 0
    assert len(build_duels(pairs.iloc[:0], first_tracks(ses), DUEL_ARTIST)) == 0
