"""The service's event log: what a line holds, how its files are named and rotated.

The service writes it (`service/eventlog.py`, `service/botify.py`), training reads it
(`training/data/events.py`); both take the schema from here (docs/architecture.md, Event log).

A line is one JSON object, one per accepted request:
`{"message": "next"|"last", "timestamp": int ms since epoch, "user": int, "seq": int,
"track": int, "time": float, "latency": float seconds, "recommendation": int|null,
"propensity": float|null, "experiments": {"EXPERIMENT": "ARM", ...}}`. Readers treat a
missing optional key as null (logs written before it existed).

`seq` orders a user's events: the session store draws it with the state the request read,
so a user's requests carry increasing seqs in the order they were served, whichever
worker or replica served them (not consecutive: a failed request leaves a gap).

Files: one per worker process, `events-<worker>.jsonl`, rotated by size to
`events-<worker>.jsonl.1`, `.2`, ...: rotation renames the live file to `.1` and shifts
older ones up, so a higher suffix is older and the bare `.jsonl` is the newest.
"""
from __future__ import annotations

import re
from pathlib import Path

from formats import FormatError

NEXT, LAST = "next", "last"
MESSAGES = (NEXT, LAST)

# field -> the JSON types it may hold (None: null), in the order the service writes them
FIELDS: dict[str, tuple[type | None, ...]] = {
    "message": (str,),
    "timestamp": (int,),
    "user": (int,),
    "seq": (int,),
    "track": (int,),
    "time": (float, int),
    "latency": (float, int),
    "recommendation": (int, None),
    "propensity": (float, int, None),
    "experiments": (dict,),
}
COLUMNS = tuple(FIELDS)
REQUIRED = ("message", "timestamp", "user", "track", "time")  # optional keys read as null
_REQUIRED = frozenset(REQUIRED)

# One line, with the fields of FIELDS in their order, for a writer that formats it directly
# (json.dumps of a dict costs ~20 us per request): message, timestamp (int ms), user, seq,
# track, time, latency (floats, %r), recommendation and propensity (already "null" or the
# number's text), experiments (already a JSON object's text).
LINE = ('{"message":"%s","timestamp":%d,"user":%d,"seq":%d,"track":%d,"time":%r,"latency":%r,'
        '"recommendation":%s,"propensity":%s,"experiments":%s}\n')

PREFIX, SUFFIX = "events-", ".jsonl"
GLOB = f"{PREFIX}*{SUFFIX}*"  # every file of a log folder, rotations included
_FILE = re.compile(rf"^(?P<base>{re.escape(PREFIX)}.+{re.escape(SUFFIX)})(?:\.(?P<n>\d+))?$")


def file_name(worker: str) -> str:
    """The live file of worker `worker`."""
    return f"{PREFIX}{worker}{SUFFIX}"


def rotated(path: Path, n: int) -> Path:
    """The `n`th rotation of the live file `path` (1 = the newest rotated one)."""
    return path.with_name(f"{path.name}.{n}")


def log_files(folder: Path) -> list[Path]:
    """A log folder's files in write order: per worker, oldest rotation first, live file last.

    Reading them in this order keeps each worker's request order, which a stable sort by
    timestamp then preserves. Files not named as a log's are ignored; [] when none is."""
    found: list[tuple[str, int, Path]] = []
    for f in folder.iterdir():
        m = _FILE.match(f.name)
        if m is not None and f.is_file():
            found.append((m.group("base"), int(m.group("n") or 0), f))
    found.sort(key=lambda x: (x[0], -x[1]))
    return [f for _, _, f in found]


def check_event(obj: dict) -> None:
    """FormatError unless `obj` (a parsed line) has every required field and a known message.

    Field types are the reader's to convert (pandas does it per column, far faster)."""
    if _REQUIRED <= obj.keys() and obj["message"] in MESSAGES:  # every line of a sound log: one C-level test
        return
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise FormatError(f"event lacks {missing}; every line needs {list(REQUIRED)} "
                          f"(see docs/architecture.md, Event log)")
    if obj["message"] not in MESSAGES:
        raise FormatError(f"unknown message {obj['message']!r}; expected {' or '.join(map(repr, MESSAGES))}")
