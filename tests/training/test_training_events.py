"""Reading and sessionizing the service's event log, on a hand-written log."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data.events import EventLogError, log_files, read_events, sessionize


def ev(msg, ts, user, track, time, rec=None, exp=None):
    return {"message": msg, "timestamp": ts, "user": user, "track": track, "time": time,
            "latency": 0.001, "recommendation": rec if msg == "next" else None,
            "experiments": exp or {"COLD_START": "C"}}


def write(path: Path, events) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


# user 1: two complete sessions [10, 11, 12] and [20, 21], then an open one [30]
# user 2: one complete session [5, 6], interleaved in time with user 1
HAND_LOG = [
    ev("next", 1000, 1, 10, 1.0, 11),
    ev("next", 1001, 2, 5, 1.0, 6),
    ev("next", 1002, 1, 11, 0.5, 12),
    ev("last", 1003, 1, 12, 0.25),
    ev("last", 1004, 2, 6, 0.75),
    ev("next", 1005, 1, 20, 1.0, 21),
    ev("last", 1006, 1, 21, 0.0),
    ev("next", 1007, 1, 30, 1.0, 31),
]


def test_sessions_are_cut_at_last_and_per_user(tmp_path):
    df = sessionize(read_events(write(tmp_path / "events-0.jsonl", HAND_LOG)))
    got = {(u, s): list(g["track"]) for (u, s), g in df.groupby(["user", "session"])}
    assert got == {(1, 0): [10, 11, 12], (1, 1): [20, 21], (1, 2): [30], (2, 0): [5, 6]}
    u1 = df[df.user == 1]
    assert list(u1["position"]) == [0, 1, 2, 0, 1, 0]
    assert list(u1["time"]) == [1.0, 0.5, 0.25, 1.0, 0.0, 1.0]
    assert list(u1["complete"]) == [True] * 5 + [False]
    assert df["session_id"].nunique() == 4
    assert all(e == {"COLD_START": "C"} for e in df["experiments"])


def test_folder_merges_workers_and_rotations_in_order(tmp_path):
    # same timestamp in two rotations of one worker: the older rotation (.1) comes first
    write(tmp_path / "events-w1.jsonl.1", [ev("next", 5, 7, 1, 1.0, 2)])
    write(tmp_path / "events-w1.jsonl", [ev("last", 5, 7, 2, 0.5)])
    write(tmp_path / "events-w0.jsonl", [ev("next", 3, 8, 9, 1.0, 4), ev("last", 9, 8, 4, 0.1)])
    (tmp_path / "notes.txt").write_text("not a log")
    files = [f.name for f in log_files(tmp_path)]
    assert files == ["events-w0.jsonl", "events-w1.jsonl.1", "events-w1.jsonl"]
    df = read_events(tmp_path)
    assert list(df["timestamp"]) == [3, 5, 5, 9]
    assert list(df["message"]) == ["next", "next", "last", "last"]
    s = sessionize(df)
    assert s.groupby("session_id")["complete"].all().all()


@pytest.mark.parametrize("content,needle", [
    ("", "empty"),
    ('{"message": "next", "timestamp": 1, "user": 1, "track": 2, "time": 1.0}\n{"message": "ne',
     ":2: not valid JSON (column 13: Unterminated string"),
    ('{"message": "next", "user": 1, "track": 2, "time": 1.0}\n', "lacks ['timestamp']"),
    ('{"message": "skip", "timestamp": 1, "user": 1, "track": 2, "time": 1.0}\n', "unknown message"),
    ('[1, 2]\n', ":1: not a JSON object"),
    (b'{"message": "next", "timestamp": 1, "user": 1, "track": 2, "time": 1.0, "x": "\xff"}\n',
     ":1: not UTF-8 text (byte 79)"),
])
def test_bad_logs_raise_clear_errors(tmp_path, content, needle):
    p = tmp_path / "events-0.jsonl"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(EventLogError) as e:
        read_events(p)
    assert needle in str(e.value)


def test_missing_log_names_the_fix(tmp_path):
    with pytest.raises(EventLogError, match="does not exist.*collect"):
        read_events(tmp_path / "nope")
    with pytest.raises(EventLogError, match="no events-"):
        read_events(tmp_path)


def test_propensity_is_read_and_missing_means_unknown(tmp_path):
    rows = [dict(HAND_LOG[0], propensity=0.25), HAND_LOG[1], dict(HAND_LOG[2], propensity=None)]
    df = read_events(write(tmp_path / "events-0.jsonl", rows))
    assert df["propensity"].iloc[0] == 0.25
    assert df["propensity"].iloc[1:].isna().all()


def test_a_jobs_own_missing_log_names_the_jobs_command(tmp_path):
    """The experiment's day-2 log gone (deleted mid-run): the fix is running the experiment
    again, not `-e collect`, which the message used to suggest."""
    from training.jobs import experiment
    from training.jobs import settings
    cfg = settings.load_settings(settings.DEFAULT_CONFIG, quick=True)
    rerun = experiment.rerun_command(cfg, in_process=False)
    assert rerun == "`mlflow run . -e experiment --env-manager local -P quick=true`"
    remedy = f"day 2's service wrote it there; run the experiment again: {rerun}"
    for path in (tmp_path / "gone", tmp_path):
        with pytest.raises(EventLogError) as err:
            read_events(path, remedy=remedy)
        assert rerun in str(err.value) and "-e collect" not in str(err.value)
    (tmp_path / "events-w1-1.jsonl").write_text("")
    with pytest.raises(EventLogError, match="is empty.*-e experiment"):
        read_events(tmp_path, remedy=remedy)


def test_two_workers_same_millisecond_events_keep_their_request_order(tmp_path):
    """Two workers log one user's requests in the same millisecond: merged by timestamp the
    files' order would put the next session's first request before this session's "last"
    (and a continuing request after a later one); the requests' own chain says the order."""
    # user 1: session A = 10 -> 11 -> 12 (last), session B starts with 20 -> 21 (last)
    # worker "a" logged the 2nd request of A and B's first; worker "b" A's first and A's last
    write(tmp_path / "events-a.jsonl", [ev("next", 5, 1, 11, 0.5, 12), ev("next", 5, 1, 20, 1.0, 21),
                                        ev("last", 9, 1, 21, 0.3)])
    write(tmp_path / "events-b.jsonl", [ev("next", 5, 1, 10, 1.0, 11), ev("last", 5, 1, 12, 0.8)])
    s = sessionize(read_events(tmp_path))
    assert s.groupby("session")["track"].apply(list).tolist() == [[10, 11, 12], [20, 21]]
    # a single worker's file is already in order and stays so, ties or not
    (tmp_path / "one").mkdir()
    write(tmp_path / "one" / "events-0.jsonl", [ev("next", 5, 1, 10, 1.0, 11), ev("next", 5, 1, 11, 0.5, 12),
                                                ev("last", 5, 1, 12, 0.8), ev("next", 5, 1, 11, 1.0, 12),
                                                ev("last", 5, 1, 12, 0.1)])
    s = sessionize(read_events(tmp_path / "one"))
    assert s.groupby("session")["track"].apply(list).tolist() == [[10, 11, 12], [11, 12]]
    # ... even where the chain alone reads it another way: an in-process day logs a user's
    # whole day in one millisecond, and a session that comes back to its first track (10)
    # does not look like a start to the chain, so B (20 -> 21) would be put before A
    (tmp_path / "day").mkdir()
    write(tmp_path / "day" / "events-0.jsonl", [ev("next", 5, 1, 10, 1.0, 11), ev("next", 5, 1, 11, 0.5, 10),
                                                ev("next", 5, 1, 10, 0.0, 12), ev("last", 5, 1, 12, 0.2),
                                                ev("next", 5, 1, 20, 1.0, 21), ev("last", 5, 1, 21, 0.3)])
    s = sessionize(read_events(tmp_path / "day"))
    assert s.groupby("session")["track"].apply(list).tolist() == [[10, 11, 10, 12], [20, 21]]
    # rotations are the same worker's stream: its order across .1 and the live file is kept
    (tmp_path / "rot").mkdir()
    write(tmp_path / "rot" / "events-0.jsonl.1", [ev("next", 5, 1, 10, 1.0, 11), ev("next", 5, 1, 11, 0.5, 10)])
    write(tmp_path / "rot" / "events-0.jsonl", [ev("next", 5, 1, 10, 0.0, 12), ev("last", 5, 1, 12, 0.2),
                                                ev("next", 5, 1, 20, 1.0, 21), ev("last", 5, 1, 21, 0.3)])
    s = sessionize(read_events(tmp_path / "rot"))
    assert s.groupby("session")["track"].apply(list).tolist() == [[10, 11, 10, 12], [20, 21]]


def _chains(seq) -> bool:
    """Whether (message, track, recommendation) events read as sessions: each "next" after the
    first of a session asks for the previous answer, and a session starts with a "next"."""
    expect = None
    for m, t, r in seq:
        if (expect is not None and t != expect) or (expect is None and m == "last"):
            return False
        expect = None if m == "last" else r
    return True


def _merges(a: list, b: list):
    """Every interleaving of two sequences that keeps each one's order."""
    if not a or not b:
        yield a + b
        return
    for rest in _merges(a[1:], b):
        yield [a[0], *rest]
    for rest in _merges(a, b[1:]):
        yield [b[0], *rest]


def test_round_robin_replicas_in_one_millisecond_are_merged_as_the_requests_chain(tmp_path):
    """Two replicas behind a round-robin balancer log one user's requests alternately, all in
    one millisecond. Tracks repeat (a listener offered the same track twice), so the first head
    that fits is not always the right one: the merge must chain every event, and where only
    one merge does, it must be the one that happened. The greedy merge got 197 of 400 such
    days wrong (a depth-first search: the 34 left are days two merges explain equally)."""
    rng = np.random.default_rng(11)
    unique = 0
    for trial in range(150):
        vocab = int(rng.choice([3, 5, 20]))
        truth = []
        n_sessions = int(rng.integers(1, 4))
        for s in range(n_sessions):
            t = int(rng.integers(vocab))
            for _ in range(int(rng.integers(1, 4))):
                r = int(rng.integers(vocab))
                truth.append(("next", t, r))
                t = r
            if s < n_sessions - 1 or rng.random() < 0.5:
                truth.append(("last", t, None))
        streams = [truth[0::2], truth[1::2]]
        d = tmp_path / str(trial)
        d.mkdir()
        for j, st in enumerate(streams):
            write(d / f"events-w{j}.jsonl", [ev(m, 7, 1, t, 1.0, r) for m, t, r in st])
        df = read_events(d)
        got = [(m, int(t), None if pd.isna(r) else int(r)) for m, t, r in zip(df.message, df.track, df.recommendation)]
        assert sorted(got, key=str) == sorted(truth, key=str)
        assert _chains(got), (trial, got)
        if sum(_chains(m) for m in _merges(*streams)) == 1:
            unique += 1
            assert got == truth, (trial, got, truth)
    assert unique > 100  # most days have one explanation; those must come out exactly
