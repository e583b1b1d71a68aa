"""Recommendation lists: i2i lists (one per track) and per-user lists, as files.

Training writes them (`training/registry/export.py`), the service and
the offline evaluation read them; both take the format from here (docs/architecture.md,
Artifact formats). Two forms of the same lists:

- JSON lines `{KEY: int, "recommendations": [int, ...]}`, best first, KEY = "track" for
  i2i lists and "user" for per-user lists (the course's `my_track_recs.json`);
- a table: int32 `[keys, k]` saved with numpy, row = key, padded with -1 at the end of a
  row; read memory-mapped and without pickle (an object array is refused, not run), so a
  service worker pays no parse and shares the pages with its siblings.

A BentoML model of lists holds both, under the names in `FILES` and `TABLES`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from formats import FormatError
from formats.jsonl import read_jsonl

DTYPE = np.int32
PAD = -1
KEYS = {"i2i": "track", "lists": "user"}            # kind -> the key field of a JSON line
FILES = {"i2i": "i2i.jsonl", "lists": "lists.jsonl"}  # kind -> its JSON-lines file in a model
TABLES = {"i2i": "i2i.npy", "lists": "lists.npy"}    # kind -> its table in a model


def check_table(table: np.ndarray, key: str, n_tracks: int, n_keys: int | None) -> None:
    """FormatError unless `table` is a table of this format over a catalog of `n_tracks`
    (with one row per key when `n_keys` is given)."""
    if table.dtype != DTYPE or table.ndim != 2 or table.shape[0] == 0:
        raise FormatError(f"expected a 2-D int32 table, got {table.dtype} {table.shape}")
    if n_keys is not None and table.shape[0] != n_keys:
        raise FormatError(f"{table.shape[0]} rows, expected one per {key} ({n_keys})")
    if int(table.min()) < PAD or int(table.max()) >= n_tracks:
        raise FormatError(f"recommendations outside the catalog (0..{n_tracks - 1}, -1 pads)")


def load_table(path: str | Path, key: str, n_tracks: int, n_keys: int | None) -> np.ndarray:
    """A table file, memory-mapped and checked (`check_table`)."""
    try:
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise FormatError(f"not a numeric .npy table ({e})") from None
    check_table(table, key, n_tracks, n_keys)
    return table


def to_table(lists: Mapping[int, Sequence[int]], n_keys: int | None = None) -> np.ndarray:
    """{key: [recommendations]} -> the table: `n_keys` rows (default: the largest key + 1),
    as wide as the longest list, -1 padded. Keys and tracks are not checked here."""
    width = max((len(v) for v in lists.values()), default=1)
    size = n_keys if n_keys is not None else max(lists, default=-1) + 1
    table = np.full((size, max(width, 1)), PAD, dtype=DTYPE)
    for k, recs in lists.items():
        table[k, : len(recs)] = recs
    return table


def read_jsonl_lists(path: str | Path, key: str, n_tracks: int, n_keys: int | None) -> np.ndarray:
    """A JSON-lines file of lists as the table (a dense array keeps 50k x 50 lists at 10 MB
    instead of ~150 MB of Python ints); FormatError naming the first bad line."""
    rows: dict[int, list[int]] = {}
    try:
        for n, rec in read_jsonl(path):
            k, recs = rec.get(key), rec.get("recommendations")
            if type(k) is not int or k < 0 or (n_keys is not None and k >= n_keys):
                raise FormatError(f"line {n}: {key!r} must be an integer in the catalog")
            if not isinstance(recs, list) or not all(type(t) is int and 0 <= t < n_tracks for t in recs):
                raise FormatError(f"line {n}: 'recommendations' must be a list of catalog tracks")
            rows[k] = recs
    except FormatError as e:
        raise FormatError(f"malformed ({e})") from None
    if not rows:
        raise FormatError("no lists in file")
    return to_table(rows, n_keys)


def read_lists(path: str | Path, key: str, n_tracks: int, n_keys: int | None) -> np.ndarray:
    """Either form, by the file's suffix (`.npy`: the table), as the table."""
    if Path(path).suffix == ".npy":
        return load_table(path, key, n_tracks, n_keys)
    return read_jsonl_lists(path, key, n_tracks, n_keys)


def write_jsonl(path: str | Path, table: np.ndarray, key: str = "track") -> Path:
    """The table as JSON lines, one per row, padding dropped; written beside and renamed,
    so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for k, row in enumerate(np.asarray(table).tolist()):
            row = [t for t in row if t != PAD]
            fh.write(json.dumps({key: k, "recommendations": row}, separators=(", ", ": ")))
            fh.write("\n")
    tmp.replace(path)
    return path


def write_table(path: str | Path, table: np.ndarray, n_tracks: int, key: str = "track") -> Path:
    """The table as a `.npy` file, checked first (`check_table`: a table the service would
    refuse is never written), written beside and renamed."""
    table = np.asarray(table)
    check_table(table, key, n_tracks, None)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, table, allow_pickle=False)
    tmp.replace(path)
    return path
