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
            if line.strip():
                yield n, parse_line(n, line)


def parse_line(n: int, line: str) -> dict:
    """Line `n` of a JSON-lines file as an object; ValueError naming the line otherwise."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:  # its own position is "line 1": name the file's line
        raise ValueError(f"line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(rec, dict):
        raise ValueError(f"line {n}: not a JSON object")
    return rec


CHUNK_LINES = 1000


def _read_records(path: Path) -> Iterator[tuple[int, str, dict]]:
    """(line number, line, object) per non-blank line, as `read_jsonl` reads them, faster.

    Lines are parsed 1,000 at a time as one JSON array (one call into the C parser instead
    of one per line: start-up time of every worker); not all 50k at once, whose transient
    dicts would leave ~20 MB of fragmented heap in every worker. A chunk that does not parse
    as a whole is read line by line, so a bad line is named exactly as `read_jsonl` names it.
    """
    # split on "\n" only, as reading the file line by line does (splitlines would also split a
    # string holding U+2028, which JSON allows)
    lines = [(n, line) for n, line in enumerate(path.read_text().split("\n"), 1) if line.strip()]
    for i in range(0, len(lines), CHUNK_LINES):
        part = lines[i:i + CHUNK_LINES]
        try:
            recs = json.loads("[" + ",".join(line for _, line in part) + "]")
        except ValueError:
            recs = None
        if recs is None or len(recs) != len(part):  # a line holding "a, b" parses as two values
            recs = [parse_line(n, line) for n, line in part]
        for (n, line), rec in zip(part, recs):
            if not isinstance(rec, dict):
                raise ValueError(f"line {n}: not a JSON object")
            yield n, line, rec


@dataclass(frozen=True)
class Catalog:
    """Tracks indexed 0..N-1 with integer artist/genre codes, precomputed once.

    Recommenders index these arrays per request, so nothing per request grows with
    the catalog. A track's record is kept as its JSON line and parsed when asked for
    (`GET /track`, rare): 50k dicts would cost each worker ~40 MB.
    """

    lines: list[str]  # track t's JSON line
    artist: np.ndarray  # int32 [N] artist code per track
    genre: np.ndarray  # int32 [N] genre code per track
    popularity: np.ndarray  # float64 [N]
    artist_tracks: list[np.ndarray]  # artist code -> its tracks, ascending
    genre_names: list[str]
    artist_names: list[str]

    def __len__(self) -> int:
        return len(self.lines)

    def __contains__(self, track: object) -> bool:
        return type(track) is int and 0 <= track < len(self.lines)

    def record(self, track: int) -> dict:
        """Track `track`'s catalog record (`popularity` 0.0 when the line has none)."""
        rec = json.loads(self.lines[track])
        rec.setdefault("popularity", 0.0)
        return rec

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
    lines: list[str] = []
    artist_codes: dict[str, int] = {}
    genre_codes: dict[str, int] = {}
    artist: list[int] = []
    genre: list[int] = []
    popularity: list[float] = []
    try:
        for n, line, rec in _read_records(path):
            if rec.get("track") != len(lines):
                raise ValueError(f"line {n}: expected track {len(lines)}, tracks ordered 0..N-1")
            for key in ("artist", "title", "genre"):
                if not isinstance(rec.get(key), str):
                    raise ValueError(f"line {n}: field {key!r} must be a string")
            pop = rec.get("popularity", 0.0)
            if not isinstance(pop, (int, float)) or pop < 0:
                raise ValueError(f"line {n}: popularity must be a number >= 0")
            lines.append(line.strip())
            artist.append(artist_codes.setdefault(rec["artist"], len(artist_codes)))
            genre.append(genre_codes.setdefault(rec["genre"], len(genre_codes)))
            popularity.append(float(pop))
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(path, f"malformed catalog ({e})", WORLD_COMMAND) from None
    if not lines:
        raise ArtifactError(path, "catalog is empty", WORLD_COMMAND)
    _check_count(path, len(lines))

    artist = np.array(artist, dtype=np.int32)
    genre = np.array(genre, dtype=np.int32)
    order = np.argsort(artist, kind="stable")
    bounds = np.searchsorted(artist[order], np.arange(len(artist_codes) + 1))
    artist_tracks = [order[bounds[a]:bounds[a + 1]] for a in range(len(artist_codes))]
    return Catalog(
        lines=lines,
        artist=artist,
        genre=genre,
        popularity=np.array(popularity),
        artist_tracks=artist_tracks,
        genre_names=list(genre_codes),
        artist_names=list(artist_codes),
    )
