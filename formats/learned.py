"""A learned version: one learner's i2i lists, the policy parameters it estimated and its own
files, as one folder (what a version of the registered model `botify-i2i` holds).

    i2i.npy        the lists as `formats.lists`' int32 table [tracks, k], -1 padded
    i2i.jsonl      the same lists as `formats.lists`' JSON lines (for people and other tools)
    policy.json    {name: value} the learner estimated for the serving policy (may be {})
    learner.json   {"format", "name", "learner", "config", "window", "figures", "tracks", "k"}
    model/         the learner's own files, if it has any (their format is the learner's)

Whoever serves or scores a version reads `i2i.npy` and `policy.json`; nobody needs the
learner's code to use its lists. Plain numbers and JSON only: nothing here is unpickled.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from formats import FormatError
from formats import lists as list_format

FORMAT = "botify-learned/v1"
TABLE = list_format.TABLES["i2i"]      # i2i.npy
JSONL = list_format.FILES["i2i"]       # i2i.jsonl
POLICY = "policy.json"
LEARNER = "learner.json"
MODEL = "model"
#: what `learner.json` must hold besides `format`
LEARNER_KEYS = ("name", "learner", "config", "window", "figures", "tracks", "k")


@dataclass(frozen=True)
class Version:
    """A learned version read back: the lists (memory-mapped), the policy parameters, what
    made it (`learner.json`) and the learner's own files (None when it has none)."""

    folder: Path
    lists: np.ndarray
    policy: dict[str, Any]
    learner: dict[str, Any]
    model: Path | None


def _json_object(value: Any, what: str) -> dict:
    if not isinstance(value, Mapping):
        raise FormatError(f"{what} must be a JSON object, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as e:
        raise FormatError(f"{what} is not plain JSON ({e})") from None


def write(folder: str | Path, lists: np.ndarray, *, policy: Mapping[str, Any], learner: Mapping[str, Any],
          model: str | Path | None = None) -> Path:
    """Write a version into `folder` (created; it must be empty or new). `lists` is the
    int32 table over a catalog of as many tracks as it has rows; `learner` holds every key
    of `LEARNER_KEYS` but `tracks` and `k` (taken from the table); `model` is a folder of
    the learner's own files, copied as `model/`. Checked before anything is written."""
    folder = Path(folder)
    table = np.asarray(lists)
    list_format.check_table(table, "track", table.shape[0] if table.ndim == 2 else 0, None)
    meta = {"format": FORMAT, **_json_object(learner, LEARNER), "tracks": int(table.shape[0]),
            "k": int(table.shape[1])}
    missing = [k for k in LEARNER_KEYS if k not in meta]
    if missing:
        raise FormatError(f"{LEARNER} lacks {missing}")
    policy = _json_object(policy, POLICY)
    if folder.exists() and any(folder.iterdir()):
        raise FormatError(f"{folder} is not empty: a version is written into a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    list_format.write_table(folder / TABLE, table, table.shape[0])
    list_format.write_jsonl(folder / JSONL, table, "track")
    (folder / POLICY).write_text(json.dumps(policy, indent=1, sort_keys=True) + "\n")
    (folder / LEARNER).write_text(json.dumps(meta, indent=1) + "\n")
    if model is not None:
        shutil.copytree(model, folder / MODEL)
    return folder


def read(folder: str | Path, n_tracks: int | None = None) -> Version:
    """The version in `folder`; FormatError naming the file at fault. `n_tracks`: the
    catalog the caller serves (a version of another world's catalog is refused)."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / LEARNER).read_text())
        policy = json.loads((folder / POLICY).read_text())
    except FileNotFoundError as e:
        raise FormatError(f"not a learned version: {Path(e.filename).name} is missing") from None
    except (ValueError, OSError) as e:
        raise FormatError(f"unreadable {LEARNER} or {POLICY} ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FormatError(f"{LEARNER}: format is not {FORMAT!r}")
    missing = [k for k in LEARNER_KEYS if k not in meta]
    if missing:
        raise FormatError(f"{LEARNER} lacks {missing}")
    if not isinstance(policy, dict):
        raise FormatError(f"{POLICY} must be a JSON object")
    tracks = int(meta["tracks"])
    if n_tracks is not None and n_tracks != tracks:
        raise FormatError(f"the lists cover {tracks} tracks, the catalog has {n_tracks}: another world's version")
    try:
        table = list_format.load_table(folder / TABLE, "track", tracks, tracks)
    except FormatError as e:
        raise FormatError(f"{TABLE}: {e}") from None
    model = folder / MODEL
    return Version(folder, table, policy, meta, model if model.is_dir() else None)
