"""A world's public catalog: where it lives, what a track's line holds, and the integer
artist/genre codes every reader derives from it.

The simulator writes it (`python -m sim.world`); the service (`service/catalog.py`) and
training (`training/data/catalog.py`) read it through the definitions here, so a track's artist
code is the same number on both sides (docs/architecture.md, The world).

`public/tracks.json`: JSON lines, one per track, ordered by track 0..N-1:
`{"track": int, "artist": str, "title": str, "genre": str, "year": int, "popularity":
float >= 0}` (`popularity` may be missing: 0.0). `public/world.json` beside it records,
among others, `tracks`: the catalog's length, so a catalog cut at a line boundary (which
still parses) is caught.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from formats import FormatError

PUBLIC, TRACKS, WORLD = "public", "tracks.json", "world.json"
WORLD_COMMAND = "python -m sim.world --config sim/config/env.yml"  # what makes a world
STRING_FIELDS = ("artist", "title", "genre")
CODE_DTYPE = np.int32


def catalog_path(world: str | Path) -> Path:
    """`<world>/public/tracks.json`; a path to a catalog file is taken as is.

    A path inside a world's hidden/ folder is refused: the hidden truth is the simulator's."""
    p = Path(world)
    path = p if p.is_file() else p / PUBLIC / TRACKS
    if "hidden" in path.resolve().parts:
        raise FormatError(f"{path}: only a world's {PUBLIC}/ folder may be read here, never hidden/")
    return path


def check_record(n: int, rec: dict, track: int) -> None:
    """FormatError naming line `n` unless `rec` is the line of track `track`."""
    if rec.get("track") != track:
        raise FormatError(f"line {n}: expected track {track}, tracks ordered 0..N-1")
    for key in STRING_FIELDS:
        if not isinstance(rec.get(key), str):
            raise FormatError(f"line {n}: field {key!r} must be a string")
    pop = rec.get("popularity", 0.0)
    if not isinstance(pop, (int, float)) or pop < 0:
        raise FormatError(f"line {n}: popularity must be a number >= 0")


def expected_tracks(path: Path) -> int | None:
    """The number of tracks `world.json` beside the catalog records (None without one)."""
    try:
        expected = json.loads(path.with_name(WORLD).read_text()).get("tracks")
    except (OSError, ValueError, AttributeError):
        return None  # a catalog without a world beside it (tests, hand-made catalogs)
    return expected if isinstance(expected, int) else None


def check_count(path: Path, n: int) -> None:
    """FormatError when the catalog's `n` tracks are not what its world.json records."""
    expected = expected_tracks(path)
    if expected is not None and expected != n:
        raise FormatError(f"catalog has {n} tracks but {WORLD} says {expected} (truncated?)")


def canonical_codes(codes: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Codes numbered in any order (`names[c]` is code c's name) renumbered to THE codes: an
    artist's (or genre's) code is the rank of its name in sorted order, so it depends on the
    catalog's set of names only, never on the order a reader met them.

    Returns (codes as int32, names in code order). Readers number names as they meet them
    (cheap while streaming) and call this once."""
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=CODE_DTYPE)
    rank[order] = np.arange(len(names), dtype=CODE_DTYPE)
    return rank[np.asarray(codes, dtype=np.int64)], [names[i] for i in order]


def encode(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Per-track names (e.g. every track's artist) -> (THE codes, names in code order)."""
    seen: dict[str, int] = {}
    codes = [seen.setdefault(v, len(seen)) for v in values]
    return canonical_codes(np.asarray(codes, dtype=np.int64), list(seen))
