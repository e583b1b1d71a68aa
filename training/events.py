"""Read the service's event log and cut it into listening sessions.

The log contract (docs/architecture.md): one JSON object per line, one file per worker
(`events-<worker>.jsonl`), rotated to `.1`, `.2`, ... (higher suffix = older). Both the
trainer and the A/B analysis read the log through this module, so they agree on what a
session is.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

REQUIRED = ("message", "timestamp", "user", "track", "time")
COLUMNS = ("message", "timestamp", "user", "track", "time", "latency", "recommendation",
           "propensity", "experiments")
MESSAGES = {"next", "last"}
_ROTATED = re.compile(r"^(?P<base>.+\.jsonl)(?:\.(?P<n>\d+))?$")


class EventLogError(ValueError):
    """The event log is missing, empty or malformed; the message names the file and fix."""


# How to get a log when there is none: a person reading a log of their own collects one; a
# job reading the log its own service just wrote passes `remedy`, the command that runs
# that step again (a missing day-2 log is not fixed by `-e collect`).
COLLECT_REMEDY = "run `mlflow run . -e collect` to make one"


def log_files(path: str | Path, remedy: str = COLLECT_REMEDY) -> list[Path]:
    """The files of a log in write order: per worker, oldest rotation first.

    Rotation renames the live file to `.1` and shifts older ones up, so `.N` is older
    than `.N-1` and the bare `.jsonl` is the newest; reading them in that order keeps
    each worker's request order, which the stable timestamp sort then preserves.
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.exists():
        raise EventLogError(f"event log {p} does not exist: pass a log file or the service's "
                            f"event_log.dir ({remedy})")
    found: list[tuple[str, int, Path]] = []
    for f in p.iterdir():
        if not f.is_file() or not f.name.startswith("events-"):
            continue
        m = _ROTATED.match(f.name)
        if m is None:
            continue
        found.append((m.group("base"), int(m.group("n") or 0), f))
    if not found:
        raise EventLogError(f"no events-*.jsonl files in {p}: is this the service's "
                            f"event_log.dir? ({remedy})")
    found.sort(key=lambda x: (x[0], -x[1]))
    return [f for _, _, f in found]


def _parse(files: Iterable[Path]) -> list[dict]:
    rows: list[dict] = []
    for f in files:
        with open(f, "r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise EventLogError(
                        f"{f}:{lineno}: not a JSON object ({e.msg}); the log is malformed or "
                        f"truncated: remove or repair that line, or collect the log again") from None
                if not isinstance(obj, dict):
                    raise EventLogError(f"{f}:{lineno}: expected a JSON object, got "
                                        f"{type(obj).__name__}")
                missing = [k for k in REQUIRED if k not in obj]
                if missing:
                    raise EventLogError(f"{f}:{lineno}: event lacks {missing}; every line needs "
                                        f"{list(REQUIRED)} (see docs/architecture.md, Event log)")
                if obj["message"] not in MESSAGES:
                    raise EventLogError(f"{f}:{lineno}: unknown message {obj['message']!r}; "
                                        f"expected 'next' or 'last'")
                rows.append(obj)
    return rows


def read_events(path: str | Path, remedy: str = COLLECT_REMEDY) -> pd.DataFrame:
    """All events of a log file or folder, ordered by timestamp (stable).

    Columns: message, timestamp (int ms), user, track (int), time, latency (float),
    recommendation (nullable Int64), propensity (float, NaN if not logged), experiments
    (dict per row, {} if absent).
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
    df = df.sort_values("timestamp", kind="stable", ignore_index=True)
    return df


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
