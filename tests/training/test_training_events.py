"""Reading and sessionizing the service's event log, on a hand-written log."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
    from training.jobs.configs import load_experiment
    cfg = load_experiment(quick=True)
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


# One user's day over two replicas behind a round-robin balancer, all in one millisecond:
# (message, track, recommendation, seq, worker). An A -> B -> A cycle (10, 11, 10, 11), a
# session's "last" next to the next session's first "next", and a request naming a track
# other than the answer it had (25 after 21). The old reader searched for an interleaving of
# the two files in which each request asks for the previous answer: the first four events
# chain both ways, and it cut [11, 10, 11] [10 ...; with the 25 nothing chains, and it put
# one file after the other: [11, 11] [25, 10, 10, 20, 26].
ROUND_ROBIN = [("next", 10, 11, 101, 1), ("next", 11, 10, 102, 0), ("next", 10, 11, 105, 1),
               ("last", 11, None, 106, 0), ("next", 20, 21, 107, 1), ("next", 25, 26, 110, 0),
               ("last", 26, None, 111, 1)]


def write_workers(folder: Path, day, user: int = 1, ts=lambda i: 7) -> Path:
    folder.mkdir(exist_ok=True)
    for w in (0, 1):
        write(folder / f"events-w{w}.jsonl", [dict(ev(m, ts(i), user, t, 0.1 * i, r), seq=q)
                                              for i, (m, t, r, q, worker) in enumerate(day) if worker == w])
    return folder


def test_two_workers_same_millisecond_events_read_back_in_seq_order(tmp_path):
    df = read_events(write_workers(tmp_path, ROUND_ROBIN))
    assert list(df["seq"]) == [q for *_, q, _ in ROUND_ROBIN]
    assert [(m, t) for m, t in zip(df["message"], df["track"])] == [(m, t) for m, t, *_ in ROUND_ROBIN]
    s = sessionize(df)
    assert s.groupby("session")["track"].apply(list).tolist() == [[10, 11, 10, 11], [20, 25, 26]]
    assert list(s["complete"]) == [True] * 7


def test_seq_orders_a_user_whatever_the_clocks_and_moves_no_other_user(tmp_path):
    """Replica 1's clock 3 ms behind replica 0's: the timestamps put its events first; the seq
    does not. Another user's events, interleaved, keep their rows; sessionize reads the seq
    even from a frame sorted by time again (several logs concatenated)."""
    write_workers(tmp_path, ROUND_ROBIN, ts=lambda i: 10 + i - 3 * (ROUND_ROBIN[i][4] == 1))
    write(tmp_path / "events-w2.jsonl", [dict(ev("next", t, 2, t, 1.0, t + 1), seq=t) for t in (8, 11, 14)])
    df = read_events(tmp_path)
    assert list(df[df.user == 1]["seq"]) == [q for *_, q, _ in ROUND_ROBIN]
    # by timestamp: 7 8 9 11 11 11 13 13 14 15, user 2's at 8, 11 (after two of user 1's) and 14
    assert list(np.flatnonzero(df.user == 2)) == [1, 5, 8]
    shuffled = df.sort_values("timestamp", kind="stable").iloc[::-1]
    s = sessionize(shuffled)
    assert s[s.user == 1].groupby("session")["track"].apply(list).tolist() == [[10, 11, 10, 11], [20, 25, 26]]


def test_a_log_without_seq_reads_in_timestamp_then_file_order(tmp_path):
    """A log written before the seq: by timestamp, each worker's own events in its file's
    order (rotations included); two workers' events in one millisecond come worker by worker
    (files by name), which is all such a log can say."""
    write(tmp_path / "events-w0.jsonl", [ev("next", 5, 1, 11, 0.5, 12), ev("next", 5, 1, 20, 1.0, 21),
                                         ev("last", 9, 1, 21, 0.3)])
    write(tmp_path / "events-w1.jsonl.1", [ev("next", 5, 1, 10, 1.0, 11)])
    write(tmp_path / "events-w1.jsonl", [ev("last", 5, 1, 12, 0.8)])
    df = read_events(tmp_path)
    assert df["seq"].isna().all()
    assert list(df["track"]) == [11, 20, 10, 12, 21]
    # a log that has both (the service upgraded, same folder): the older lines first
    write(tmp_path / "events-w2.jsonl", [dict(ev("next", 4, 1, 30, 1.0, 31), seq=1), dict(ev("last", 6, 1, 31, 0.2), seq=2)])
    s = sessionize(read_events(tmp_path))
    assert list(s["track"]) == [11, 20, 10, 12, 21, 30, 31]
