"""Read the service's event log and cut it into listening sessions.

The log contract (docs/architecture.md): one JSON object per line, one file per worker
(`events-<worker>.jsonl`), rotated to `.1`, `.2`, ... (higher suffix = older). Both the
trainer and the A/B analysis read the log through this module, so they agree on what a
session is. A user's events are in the order the service served them (each line's `seq`).
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


def _parse(files: Iterable[Path]) -> list[dict]:
    """The events of `files` in read order."""
    rows: list[dict] = []
    for f in files:
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
    return rows


def read_events(path: str | Path, remedy: str = COLLECT_REMEDY) -> pd.DataFrame:
    """All events of a log file or folder, ordered by timestamp (stable), each user's in the
    order the service served them (`seq`, see `_in_seq_order`).

    Columns: message, timestamp (int ms), user, seq (nullable Int64: NA in a log written
    before the service drew it), track (int), time, latency (float), recommendation
    (nullable Int64), propensity (float, NaN if not logged), experiments (dict per row, {}
    if absent).
    Raises EventLogError for a missing, empty or malformed log; `remedy` is its fix.
    """
    files = log_files(path, remedy)
    rows = _parse(files)
    if not rows:
        raise EventLogError(f"event log {path} is empty ({len(files)} file(s), no events): {remedy}")
    try:
        df = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
        df["message"] = df["message"].astype(str)
        df["timestamp"] = df["timestamp"].astype(np.int64)
        df["user"] = df["user"].astype(np.int64)
        df["seq"] = _nullable_ints(df["seq"])
        df["track"] = df["track"].astype(np.int64)
        df["time"] = df["time"].astype(np.float64)
        df["latency"] = pd.to_numeric(df["latency"], errors="raise").astype(np.float64)
        df["recommendation"] = _nullable_ints(df["recommendation"])
        # the probability the serving policy gave its recommendation (NaN: unknown, or a log
        # written before the service logged it)
        df["propensity"] = pd.to_numeric(df["propensity"], errors="raise").astype(np.float64)
        df["experiments"] = [e if isinstance(e, dict) else {} for e in df["experiments"]]
    except (TypeError, ValueError) as e:
        raise EventLogError(f"event log {path} has a field of the wrong type ({e}); see "
                            f"docs/architecture.md, Event log, for the types") from None
    # files are read in write order (per worker, oldest rotation first), so the stable sort
    # keeps each worker's own order among equal timestamps
    order = np.argsort(df["timestamp"].to_numpy(), kind="stable")
    return _in_seq_order(df.iloc[order].reset_index(drop=True))


def _nullable_ints(values: pd.Series) -> pd.arrays.IntegerArray:
    """Ints with NA for null or missing (pandas holds such a column as floats, exact below 2^53;
    a seq, microseconds since 1970, stays below it until the 23rd century); a fraction raises."""
    return pd.array(values.to_numpy(), dtype="Int64")


def _in_seq_order(df: pd.DataFrame) -> pd.DataFrame:
    """Each user's events that carry a seq put in seq order, in the rows those events hold.

    Timestamps are each worker's clock at the millisecond: two workers (or replicas) can log
    one user's consecutive requests in the same millisecond, or, on two machines, in the
    wrong order; the seq, drawn by the session store with the state each request read, is
    the order the user's requests were served. Other users' rows do not move, and events of
    a log written before the seq existed (NA) keep the timestamp order."""
    seq = df["seq"].to_numpy(dtype=np.int64, na_value=-1)
    rows = np.flatnonzero(seq >= 0)
    if not len(rows):
        return df
    users = df["user"].to_numpy()[rows]
    slots = rows[np.argsort(users, kind="stable")]  # each user's rows, user by user
    order = np.arange(len(df))
    order[slots] = rows[np.lexsort((seq[rows], users))]  # the same users' events, by seq
    return df.iloc[order].reset_index(drop=True)


def sessionize(events: pd.DataFrame) -> pd.DataFrame:
    """Cut each user's events into sessions: a session ends at a "last" event.

    The service learns where a session ends only from /last, so that is the only cut.
    Adds `session` (per-user index 0, 1, ...), `session_id` (global, dense, in order of
    (user, session)), `position` (0 = the track the user chose; later = recommended) and
    `complete` (False for a user's trailing session that has no "last" yet).
    Rows are ordered by user, then as served: by `seq` (read_events' order, whatever order
    the frame has now: several logs concatenated, sorted by time), events without one (a log
    written before it existed, a frame without the column) first, by timestamp (stable).
    """
    if events.empty:
        raise EventLogError("no events to sessionize: the log is empty")
    stamps = events["timestamp"].to_numpy(dtype=np.int64)
    if "seq" in events:
        seq = events["seq"].to_numpy(dtype=np.int64, na_value=-1)
        served = seq >= 0
        key = np.where(served, seq, stamps)
    else:
        served, key = np.zeros(len(events), dtype=bool), stamps
    df = events.iloc[np.lexsort((key, served, events["user"].to_numpy()))].reset_index(drop=True)
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
