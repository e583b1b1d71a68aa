"""A learned version: one learner's i2i lists, the policy parameters it estimated and its own
files, as one folder (what a version of the registered model `botify-i2i` holds).

    i2i.npy        the lists as `formats.lists`' int32 table [tracks, k], -1 padded
    i2i.jsonl      the same lists as `formats.lists`' JSON lines (for people and other tools)
    policy.json    {name: value} the learner estimated for the serving policy (may be {})
    explore.npz    optional: the exploration table, `cand` int32 [artists, m] (artist codes of
                   `formats.catalog`, -1 padded at the end of a row) and `weight` float32
                   [artists, m] (> 0 where `cand` is set, 0 in the pads): row a holds the
                   artists an exploring policy may try after artist a, and how often
    learner.json   {"format", "name", "learner", "config", "window", "figures", "tracks", "k"}
    model/         the learner's own files, if it has any (their format is the learner's)

Whoever serves or scores a version reads `i2i.npy` and `policy.json` (and `explore.npz`, if
there); nobody needs the
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
EXPLORE = "explore.npz"
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
    explore: tuple[np.ndarray, np.ndarray] | None = None   # (cand, weight) of explore.npz


def _json_object(value: Any, what: str) -> dict:
    if not isinstance(value, Mapping):
        raise FormatError(f"{what} must be a JSON object, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as e:
        raise FormatError(f"{what} is not plain JSON ({e})") from None


def check_explore(cand: Any, weight: Any, n_artists: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An exploration table as `explore.npz` holds it, checked: (cand int32, weight float32);
    FormatError naming what is wrong. `n_artists`: the catalog's (codes beyond it refused)."""
    cand, weight = np.asarray(cand), np.asarray(weight)
    if cand.ndim != 2 or weight.shape != cand.shape:
        raise FormatError(f"{EXPLORE}: `cand` and `weight` must be two tables of one shape [artists, m], "
                          f"got {cand.shape} and {weight.shape}")
    if not np.issubdtype(cand.dtype, np.integer) or not np.issubdtype(weight.dtype, np.floating):
        raise FormatError(f"{EXPLORE}: `cand` must hold integers and `weight` floats, got {cand.dtype}, {weight.dtype}")
    if n_artists is not None and cand.shape[0] != n_artists:
        raise FormatError(f"{EXPLORE}: {cand.shape[0]} rows, the catalog has {n_artists} artists: another world's table")
    top = cand.shape[0] if n_artists is None else n_artists
    if cand.size and (cand.min() < -1 or cand.max() >= top):
        raise FormatError(f"{EXPLORE}: artist codes must be in [0, {top}) or -1 (padding)")
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise FormatError(f"{EXPLORE}: weights must be finite and >= 0")
    if ((cand < 0) & (weight > 0)).any():
        raise FormatError(f"{EXPLORE}: a pad (-1) carries weight")
    return cand.astype(np.int32), weight.astype(np.float32)


def read_explore(path: str | Path, n_artists: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(cand, weight) of an `explore.npz`, checked (`check_explore`); FormatError otherwise."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile) or {"cand", "weight"} - set(z.files):
                raise FormatError(f"{EXPLORE}: an .npz of `cand` and `weight` expected")
            cand, weight = z["cand"], z["weight"]
    except (OSError, ValueError, AttributeError) as e:
        raise FormatError(f"{EXPLORE}: unreadable ({e})") from None
    return check_explore(cand, weight, n_artists)


def read_levels(text: str) -> list[tuple[float, float]]:
    """The policy parameter `explore_levels` ("edge:share ...", edges rising, shares in [0, 1)):
    the exploration share by the session's mean listen so far, as [(edge, share), ...]."""
    try:
        pairs = [tuple(float(x) for x in item.split(":")) for item in str(text).split()]
    except ValueError:
        raise FormatError(f"explore_levels must be `edge:share ...`, got {text!r}") from None
    if not pairs or any(len(p) != 2 or not 0.0 <= p[1] < 1.0 for p in pairs) or \
            [p[0] for p in pairs] != sorted(p[0] for p in pairs):
        raise FormatError(f"explore_levels needs rising edges with shares in [0, 1), got {text!r}")
    return pairs  # type: ignore[return-value]


def levels_text(pairs: list[tuple[float, float]]) -> str:
    """[(edge, share), ...] as `explore_levels` (what a learner writes into policy.json)."""
    text = " ".join(f"{e:g}:{p:g}" for e, p in pairs)
    read_levels(text)
    return text


def write(folder: str | Path, lists: np.ndarray, *, policy: Mapping[str, Any], learner: Mapping[str, Any],
          model: str | Path | None = None, explore: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Write a version into `folder` (created; it must be empty or new). `lists` is the
    int32 table over a catalog of as many tracks as it has rows; `learner` holds every key
    of `LEARNER_KEYS` but `tracks` and `k` (taken from the table); `model` is a folder of
    the learner's own files, copied as `model/`; `explore` the exploration table (cand,
    weight). Checked before anything is written."""
    folder = Path(folder)
    table = np.asarray(lists)
    list_format.check_table(table, "track", table.shape[0] if table.ndim == 2 else 0, None)
    meta = {"format": FORMAT, **_json_object(learner, LEARNER), "tracks": int(table.shape[0]),
            "k": int(table.shape[1])}
    missing = [k for k in LEARNER_KEYS if k not in meta]
    if missing:
        raise FormatError(f"{LEARNER} lacks {missing}")
    policy = _json_object(policy, POLICY)
    table_x = check_explore(*explore) if explore is not None else None
    if folder.exists() and any(folder.iterdir()):
        raise FormatError(f"{folder} is not empty: a version is written into a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    list_format.write_table(folder / TABLE, table, table.shape[0])
    list_format.write_jsonl(folder / JSONL, table, "track")
    (folder / POLICY).write_text(json.dumps(policy, indent=1, sort_keys=True) + "\n")
    (folder / LEARNER).write_text(json.dumps(meta, indent=1) + "\n")
    if table_x is not None:
        np.savez(folder / EXPLORE, cand=table_x[0], weight=table_x[1])
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
    explore = read_explore(folder / EXPLORE) if (folder / EXPLORE).exists() else None
    return Version(folder, table, policy, meta, model if model.is_dir() else None, explore)
