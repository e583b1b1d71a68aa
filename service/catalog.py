"""The public track catalog, the only view of the world the service may have."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

WORLD_COMMAND = "python -m sim.world --config sim/config/env.yml"


class ArtifactError(RuntimeError):
    """A file the service needs is missing or malformed; start-up must stop."""

    def __init__(self, path: str | Path, problem: str, command: str) -> None:
        super().__init__(f"{path}: {problem}. It is produced by: {command}")
        self.path = str(path)
        self.command = command


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each line of a JSON-lines file, blank lines skipped.

    Raises ValueError (naming the line) for a line that is not a JSON object, so each
    loader reports every malformed line the same way.
    """
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:  # its own position is "line 1": name the file's line
                raise ValueError(f"line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"line {n}: not a JSON object")
            yield n, rec


@dataclass(frozen=True)
class Catalog:
    """Tracks indexed 0..N-1 with integer artist/genre codes, precomputed once.

    Recommenders index these arrays per request, so nothing per request grows with
    the catalog.
    """

    records: list[dict]
    artist: np.ndarray  # int32 [N] artist code per track
    genre: np.ndarray  # int32 [N] genre code per track
    popularity: np.ndarray  # float64 [N]
    artist_tracks: list[np.ndarray]  # artist code -> its tracks, ascending
    genre_names: list[str]
    artist_names: list[str]

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, track: object) -> bool:
        return type(track) is int and 0 <= track < len(self.records)

    def artist_list(self) -> list[int]:
        """Plain-int artist codes: cheaper than numpy scalars in the request path."""
        return self.artist.tolist()


def _check_count(path: Path, n: int) -> None:
    """A catalog cut at a line boundary parses: the world's own record of its size catches it."""
    meta = path.with_name("world.json")
    try:
        expected = json.loads(meta.read_text()).get("tracks")
    except (OSError, ValueError, AttributeError):
        return  # a catalog without a world beside it (tests, hand-made catalogs)
    if isinstance(expected, int) and expected != n:
        raise ArtifactError(path, f"catalog has {n} tracks but {meta.name} says {expected} (truncated?)",
                            WORLD_COMMAND)


def load_catalog(path: str | Path) -> Catalog:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "catalog not found", WORLD_COMMAND)
    records: list[dict] = []
    try:
        for n, rec in read_jsonl(path):
            if rec.get("track") != len(records):
                raise ValueError(f"line {n}: expected track {len(records)}, tracks ordered 0..N-1")
            for key in ("artist", "title", "genre"):
                if not isinstance(rec.get(key), str):
                    raise ValueError(f"line {n}: field {key!r} must be a string")
            rec.setdefault("popularity", 0.0)
            if not isinstance(rec["popularity"], (int, float)) or rec["popularity"] < 0:
                raise ValueError(f"line {n}: popularity must be a number >= 0")
            records.append(rec)
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(path, f"malformed catalog ({e})", WORLD_COMMAND) from None
    if not records:
        raise ArtifactError(path, "catalog is empty", WORLD_COMMAND)
    _check_count(path, len(records))

    artist_codes: dict[str, int] = {}
    genre_codes: dict[str, int] = {}
    artist = np.array([artist_codes.setdefault(r["artist"], len(artist_codes)) for r in records], dtype=np.int32)
    genre = np.array([genre_codes.setdefault(r["genre"], len(genre_codes)) for r in records], dtype=np.int32)
    order = np.argsort(artist, kind="stable")
    bounds = np.searchsorted(artist[order], np.arange(len(artist_codes) + 1))
    artist_tracks = [order[bounds[a]:bounds[a + 1]] for a in range(len(artist_codes))]
    return Catalog(
        records=records,
        artist=artist,
        genre=genre,
        popularity=np.array([float(r["popularity"]) for r in records]),
        artist_tracks=artist_tracks,
        genre_names=list(genre_codes),
        artist_names=list(artist_codes),
    )
