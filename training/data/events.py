"""Read the service's event log and cut it into listening sessions.

The log contract (docs/architecture.md): one JSON object per line, one file per worker
(`events-<worker>.jsonl`), rotated to `.1`, `.2`, ... (higher suffix = older). Both the
trainer and the A/B analysis read the log through this module, so they agree on what a
session is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from formats import FormatError
from formats import events as fmt
from formats.jsonl import read_jsonl

# the schema is formats.events', the writer's (service/botify.py) too
REQUIRED, COLUMNS, MESSAGES = fmt.REQUIRED, fmt.COLUMNS, fmt.MESSAGES


class EventLogError(ValueError):
    """The event log is missing, empty or malformed; the message names the file and fix."""


# How to get a log when there is none: a person reading a log of their own collects one; a
# job reading the log its own service just wrote passes `remedy`, the command that runs
# that step again (a missing day-2 log is not fixed by `-e collect`).
COLLECT_REMEDY = "run `mlflow run . -e collect` to make one"


def log_files(path: str | Path, remedy: str = COLLECT_REMEDY) -> list[Path]:
    """The files of a log (a file, or a folder of them) in write order: per worker, oldest
    rotation first (`formats.events.log_files`), so a stable sort by timestamp keeps each
    worker's request order."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.exists():
        raise EventLogError(f"event log {p} does not exist: pass a log file or the service's "
                            f"event_log.dir ({remedy})")
    files = fmt.log_files(p)
    if not files:
        raise EventLogError(f"no {fmt.GLOB} files in {p}: is this the service's "
                            f"event_log.dir? ({remedy})")
    return files


def _parse(files: Iterable[Path]) -> tuple[list[dict], list[int]]:
    """The events of `files` in read order, and the number read from each file."""
    rows: list[dict] = []
    counts: list[int] = []
    for f in files:
        start = len(rows)
        try:
            for lineno, obj in read_jsonl(f):
                try:
                    fmt.check_event(obj)
                except FormatError as e:
                    raise EventLogError(f"{f}:{lineno}: {e}") from None
                rows.append(obj)
        except FormatError as e:  # "line N: ..." of a line that is not a JSON object
            raise EventLogError(f"{f}:{str(e).removeprefix('line ')}; the log is malformed or truncated: "
                                f"remove or repair that line, or collect the log again") from None
        counts.append(len(rows) - start)
    return rows, counts


def read_events(path: str | Path, remedy: str = COLLECT_REMEDY) -> pd.DataFrame:
    """All events of a log file or folder, ordered by timestamp (stable).

    Columns: message, timestamp (int ms), user, track (int), time, latency (float),
    recommendation (nullable Int64), propensity (float, NaN if not logged), experiments
    (dict per row, {} if absent).
    Raises EventLogError for a missing, empty or malformed log; `remedy` is its fix.
    """
    files = log_files(path, remedy)
    rows, counts = _parse(files)
    if not rows:
        raise EventLogError(f"event log {path} is empty ({len(files)} file(s), no events): {remedy}")
    try:
        df = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
        df["message"] = df["message"].astype(str)
        df["timestamp"] = df["timestamp"].astype(np.int64)
        df["user"] = df["user"].astype(np.int64)
        df["track"] = df["track"].astype(np.int64)
        df["time"] = df["time"].astype(np.float64)
        df["latency"] = pd.to_numeric(df["latency"], errors="raise").astype(np.float64)
        df["recommendation"] = pd.array(
            [None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)
             for v in df["recommendation"]], dtype="Int64")
        # the probability the serving policy gave its recommendation (NaN: unknown, or a log
        # written before the service logged it)
        df["propensity"] = pd.to_numeric(df["propensity"], errors="raise").astype(np.float64)
        df["experiments"] = [e if isinstance(e, dict) else {} for e in df["experiments"]]
    except (TypeError, ValueError) as e:
        raise EventLogError(f"event log {path} has a field of the wrong type ({e}); see "
                            f"docs/architecture.md, Event log, for the types") from None
    # which worker wrote each row (its rotations are one stream): within a stream the file
    # order is the request order; only rows of different streams can be merged wrong
    stream = np.repeat(pd.factorize(np.array([fmt.stream(f) for f in files]))[0], counts)
    order = np.argsort(df["timestamp"].to_numpy(), kind="stable")
    df = df.iloc[order].reset_index(drop=True)
    return _order_ties(df, stream[order])


def _order_ties(df: pd.DataFrame, stream: np.ndarray) -> pd.DataFrame:
    """Put a user's events that share a millisecond back in the order they happened.

    Each worker (or replica) writes its own file, in order; merged by timestamp, a user's
    events logged in the same millisecond by two workers keep the files' order, which may
    not be theirs, and a "last" read after the next session's first "next" cuts the
    sessions wrong (measured: 8 such ties in a 1,000-episode day over two replicas). The
    requests themselves say how to interleave the workers' streams: within a session each
    event's `track` is the previous event's `recommendation`, and a session starts after a
    "last". Each stream's own order is never changed (one worker's file is the truth: an
    in-process day logs a user's whole sessions within one millisecond, where the chain
    alone is ambiguous), and only tie groups that span two streams are touched.
    """
    tied = df.duplicated(["user", "timestamp"], keep=False).to_numpy()
    if not tied.any():
        return df
    users, stamps = df["user"].to_numpy(), df["timestamp"].to_numpy()
    ties = np.flatnonzero(tied)
    by_group = pd.Series(stream[ties]).groupby([users[ties], stamps[ties]])
    ties = ties[(by_group.transform("min") != by_group.transform("max")).to_numpy()]
    if not len(ties):
        return df
    tracks = df["track"].to_numpy()
    last = (df["message"] == "last").to_numpy()
    recs = df["recommendation"].to_numpy(dtype=object, na_value=None)
    # each row's previous row of the same user (-1: none): what a tie group continues from
    previous = pd.Series(np.arange(len(df))).groupby(users).shift(1).fillna(-1).astype(np.int64).to_numpy()
    order = np.arange(len(df))
    # only the mixed tie groups are visited; groups of one user in time order, so a group that
    # continues an earlier reordered one reads that one's new last row (`order`)
    for _, rows in pd.Series(ties).groupby([users[ties], stamps[ties]]):
        slots = rows.to_numpy()
        before = previous[slots[0]]
        queues = [list(q) for _, q in pd.Series(slots).groupby(stream[slots], sort=False)]
        order[slots] = _interleave(queues, int(order[before]) if before >= 0 else None, tracks, recs, last)
    return df.iloc[order].reset_index(drop=True)


# bounds of the search below: a tie group of one user spans a few events in practice
_SEARCH_EVENTS, _SEARCH_STEPS = 200, 20000


def _interleave(queues: list[list[int]], before: int | None, tracks, recs, last) -> list[int]:
    """One user's same-millisecond events, one queue per worker in that worker's order, merged
    in an order their requests chain (see `_order_ties`): only a queue's head can go next; a
    "next" continuing a session must ask for the track the previous answer recommended, and
    after a "last" (or at a user's first event) a session starts with a "next". A depth-first
    search over the heads finds a merge in which every event chains; taking the first head
    that fits, without looking ahead, goes wrong where a track repeats (a listener offered the
    same track twice, round-robin replicas): 197 of 400 random two-worker days misordered.
    Where no merge chains every event (a request that does not follow its answer, a log cut
    mid-session), or the group is beyond the search's bounds, the workers' order is kept, one
    worker after the other."""
    n = sum(len(q) for q in queues)
    pos = [0] * len(queues)
    out: list[int] = []
    steps = 0

    def search(expect) -> bool:
        nonlocal steps
        if len(out) == n:
            return True
        steps += 1
        if steps > _SEARCH_STEPS:
            return False
        for i, q in enumerate(queues):
            if pos[i] == len(q):
                continue
            k = q[pos[i]]
            if (tracks[k] == expect) if expect is not None else not last[k]:
                pos[i] += 1
                out.append(k)
                if search(None if last[k] else recs[k]):
                    return True
                pos[i] -= 1
                out.pop()
        return False

    if n <= _SEARCH_EVENTS and search(recs[before] if before is not None and not last[before] else None):
        return out
    return [k for q in queues for k in q]


def sessionize(events: pd.DataFrame) -> pd.DataFrame:
    """Cut each user's events into sessions: a session ends at a "last" event.

    The service learns where a session ends only from /last, so that is the only cut.
    Adds `session` (per-user index 0, 1, ...), `session_id` (global, dense, in order of
    (user, session)), `position` (0 = the track the user chose; later = recommended) and
    `complete` (False for a user's trailing session that has no "last" yet).
    Rows are ordered by user, then timestamp (stable).
    """
    if events.empty:
        raise EventLogError("no events to sessionize: the log is empty")
    df = events.sort_values(["user", "timestamp"], kind="stable", ignore_index=True)
    is_last = (df["message"] == "last").to_numpy()
    user = df["user"].to_numpy()
    # A session index increments on the row after each "last" of the same user.
    ends_before = np.concatenate([[0], is_last[:-1].astype(np.int64)])
    new_user = np.concatenate([[True], user[1:] != user[:-1]])
    ends_before[new_user] = 0
    tmp = pd.Series(ends_before)
    session = tmp.groupby(user).cumsum().to_numpy()
    df["session"] = session.astype(np.int64)
    starts = new_user | (np.concatenate([[0], is_last[:-1]]).astype(bool))
    df["session_id"] = np.cumsum(starts) - 1
    df["position"] = df.groupby("session_id", sort=False).cumcount().astype(np.int64)
    sid = df["session_id"].to_numpy()
    df["complete"] = (np.bincount(sid, weights=is_last.astype(np.float64)) > 0)[sid]
    return df


def log_digest(path: str | Path) -> str:
    """sha256 of a log's bytes in read order: names the dataset a model was trained on."""
    import hashlib
    h = hashlib.sha256()
    for f in log_files(path):
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
