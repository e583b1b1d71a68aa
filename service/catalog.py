"""The public track catalog, the only view of the world the service may have."""
from __future__ import annotations

import array
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from itertools import repeat
from typing import Iterator, Sequence

import numpy as np

from formats import catalog as fmt
from formats.jsonl import parse_line

WORLD_COMMAND = fmt.WORLD_COMMAND


class ArtifactError(RuntimeError):
    """A file the service needs is missing or malformed; start-up must stop."""

    def __init__(self, path: str | Path, problem: str, command: str) -> None:
        super().__init__(f"{path}: {problem}. It is produced by: {command}")
        self.path = str(path)
        self.command = command


CHUNK_LINES = 1000


def _line_bounds(data: bytes, block: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of each line of a text: line i is data[starts[i]:ends[i]], without its "\\n".

    Searched a block at a time: a comparison over the whole file would make a temporary as
    large as the file, which the allocator then keeps resident in every worker."""
    # split on "\n" only, as reading the file line by line does (a string may hold U+2028)
    found = [np.flatnonzero(np.frombuffer(data, dtype=np.uint8, count=min(block, len(data) - at), offset=at) == 10) + at
             for at in range(0, len(data), block)]
    ends = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    return starts, ends.astype(np.int64)


def _read_chunks(data: bytes, starts: np.ndarray, ends: np.ndarray) -> Iterator[tuple[Sequence[int], list[dict]]]:
    """(line indices, objects) of the non-blank lines of a JSON-lines text (`_line_bounds`),
    1,000 lines at a time, as `formats.jsonl.read_jsonl` reads them, faster.

    Lines are parsed 1,000 at a time as one JSON array (one call into the C parser instead
    of one per line: start-up time of every worker); not all at once, whose transient dicts
    would leave a fragmented heap in every worker; no Python object per line
    outlives its chunk, for the same reason. A chunk that does not parse as a whole (a blank
    or bad line in it) is read line by line, so a bad line is named exactly as `read_jsonl`
    names it.
    """
    for i in range(0, len(ends), CHUNK_LINES):
        j = min(i + CHUNK_LINES, len(ends))
        try:  # the common case: each line of the chunk one object (JSON strings hold no raw "\n")
            recs = json.loads("[" + data[starts[i]:ends[j - 1]].decode().replace("\n", ",") + "]")
        except ValueError:  # and UnicodeDecodeError
            recs = None
        if recs is not None and len(recs) == j - i and set(map(type, recs)) == {dict}:
            yield range(i, j), recs
            continue
        # a line holding "a, b" parses as two values: also line by line
        lines = [data[s:e] for s, e in zip(starts[i:j].tolist(), ends[i:j].tolist())]
        recs = [parse_line(k + 1, line) if line.strip() else None for k, line in enumerate(lines, i)]
        for k, rec in enumerate(recs, i):
            if rec is not None and not isinstance(rec, dict):
                raise ValueError(f"line {k + 1}: not a JSON object")
        yield [k for k, rec in enumerate(recs, i) if rec is not None], [rec for rec in recs if rec is not None]


@dataclass(frozen=True, eq=False)
class Catalog:
    """Tracks indexed 0..N-1 with integer artist/genre codes, precomputed once.

    Recommenders index these arrays per request, so nothing per request grows with
    the catalog. A track's record is kept as its JSON line in the file's bytes and parsed
    when asked for (`GET /track`, rare): a dict or a string per track would cost every worker
    memory for a rare route. What several recommenders derive from the catalog (plain-int codes,
    tracks by popularity per artist and genre) is made once, on first use, and shared.
    """

    text: bytes  # the catalog file
    spans: np.ndarray  # int64 [N, 2]: track t's line is text[spans[t, 0]:spans[t, 1]]
    artist: np.ndarray  # int32 [N] artist code per track
    genre: np.ndarray  # int32 [N] genre code per track
    popularity: np.ndarray  # float64 [N]
    artist_tracks: list[np.ndarray]  # artist code -> its tracks, ascending
    genre_names: list[str]
    artist_names: list[str]

    def __len__(self) -> int:
        return len(self.spans)

    def __contains__(self, track: object) -> bool:
        return type(track) is int and 0 <= track < len(self.spans)

    def record(self, track: int) -> dict:
        """Track `track`'s catalog record (`popularity` 0.0 when the line has none)."""
        start, end = self.spans[track].tolist()
        rec = json.loads(self.text[start:end])
        rec.setdefault("popularity", 0.0)
        return rec

    def artist_list(self) -> list[int]:
        """Plain-int artist codes: cheaper than numpy scalars in the request path. Shared by
        every recommender over this catalog: read it, never change it."""
        return self._artist_list

    @cached_property
    def _artist_list(self) -> list[int]:
        return self.artist.tolist()

    @cached_property
    def genre_list(self) -> list[int]:
        """Plain-int genre codes (shared, read-only, as `artist_list`)."""
        return self.genre.tolist()

    @cached_property
    def artist_track_lists(self) -> list[list[int]]:
        """Artist code -> its tracks, ascending, as plain ints (shared, read-only)."""
        return [a.tolist() for a in self.artist_tracks]

    @cached_property
    def popularity_order(self) -> np.ndarray:
        """Tracks, most popular first (ties: lower track first; shared, read-only)."""
        return np.argsort(-self.popularity, kind="stable")

    @cached_property
    def artist_tracks_by_popularity(self) -> list[list[int]]:
        """Artist code -> its tracks, most popular first (ties: lower track first; shared, read-only)."""
        order = self.popularity_order
        return _grouped(order, self.artist[order], len(self.artist_names))

    @cached_property
    def genre_artists_by_popularity(self) -> list[list[int]]:
        """Genre code -> artists, each under the genre of its most popular track, in the order
        of those tracks' popularity (shared, read-only)."""
        order = self.popularity_order
        # each artist's most popular track: its first place in the popularity order
        first = np.unique(self.artist[order], return_index=True)[1]
        artists = np.argsort(first, kind="stable")  # artists by their most popular track
        return _grouped(artists, self.genre[order[first[artists]]], len(self.genre_names))


def _grouped(items: np.ndarray, keys: np.ndarray, n_keys: int) -> list[list[int]]:
    """Key -> its items, in their order in `items` (a stable sort by key: no Python loop over
    the catalog at every worker's start)."""
    by_key = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[by_key], np.arange(n_keys + 1)).tolist()
    items = items[by_key]
    return [items[bounds[k]:bounds[k + 1]].tolist() for k in range(n_keys)]


def _check_count(path: Path, n: int) -> None:
    """A catalog cut at a line boundary parses: the world's own record of its size catches it."""
    try:
        fmt.check_count(path, n)
    except ValueError as e:
        raise ArtifactError(path, str(e), WORLD_COMMAND) from None


def _check_records(lines: Sequence[int], recs: list[dict], first_track: int) -> None:
    """ValueError naming the first line whose record is not a catalog track (`formats.catalog`)."""
    for track, (k, rec) in enumerate(zip(lines, recs), first_track):
        fmt.check_record(k + 1, rec, track)


def load_catalog(path: str | Path) -> Catalog:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "catalog not found", WORLD_COMMAND)
    data = path.read_bytes()
    # per track, in flat arrays rather than lists of Python numbers: what outlives the parse
    # must not be interleaved with its short-lived objects (a fragmented heap stays resident)
    kept = array.array("q")  # the line index of each track
    artist_codes: dict[str, int] = {}
    genre_codes: dict[str, int] = {}
    artist = array.array("i")
    genre = array.array("i")
    popularity = array.array("d")
    try:
        starts, ends = _line_bounds(data)
        for lines, recs in _read_chunks(data, starts, ends):
            # a chunk's fields checked column by column (C loops); one that fails is checked
            # record by record, which names the first bad line and field
            get = dict.get
            tracks = list(map(get, recs, repeat("track")))
            names = [list(map(get, recs, repeat(key))) for key in ("artist", "title", "genre")]
            pops = list(map(get, recs, repeat("popularity"), repeat(0.0)))
            if not (tracks == list(range(len(kept), len(kept) + len(recs)))
                    and all(set(map(type, column)) <= {str} for column in names)
                    and set(map(type, pops)) <= {int, float} and (not pops or min(pops) >= 0)):
                _check_records(lines, recs, len(kept))
            kept.extend(lines)
            artist.extend([artist_codes.setdefault(a, len(artist_codes)) for a in names[0]])
            genre.extend([genre_codes.setdefault(g, len(genre_codes)) for g in names[2]])
            popularity.extend(map(float, pops))
    except ValueError as e:
        raise ArtifactError(path, f"malformed catalog ({e})", WORLD_COMMAND) from None
    if not kept:
        raise ArtifactError(path, "catalog is empty", WORLD_COMMAND)
    _check_count(path, len(kept))
    kept = np.frombuffer(kept, dtype=np.int64)

    # numbered as met while parsing, renumbered once to the codes training uses too
    artist, artist_names = fmt.canonical_codes(np.array(artist), list(artist_codes))
    genre, genre_names = fmt.canonical_codes(np.array(genre), list(genre_codes))
    order = np.argsort(artist, kind="stable")
    bounds = np.searchsorted(artist[order], np.arange(len(artist_codes) + 1))
    artist_tracks = [order[bounds[a]:bounds[a + 1]] for a in range(len(artist_codes))]
    return Catalog(
        text=data,
        spans=np.stack([starts[kept], ends[kept]], axis=1).astype(np.int64),
        artist=artist,
        genre=genre,
        popularity=np.array(popularity),
        artist_tracks=artist_tracks,
        genre_names=genre_names,
        artist_names=artist_names,
    )
