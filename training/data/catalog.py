"""The public catalog, the only view of the world training may have.

Tracks' artist and genre become integer codes so a model can share what it learns about
one track with every track of the same artist or genre (tracks never played in the logs
still get a sensible embedding). The file format, its checks and the codes are
`formats.catalog`'s, the service's too: a code means the same artist on both sides.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from formats import FormatError
from formats import catalog as fmt
from formats.jsonl import read_jsonl


class CatalogError(ValueError):
    """The world or its public catalog is missing or malformed."""


@dataclass(frozen=True)
class Catalog:
    tracks: pd.DataFrame          # one row per track, index = track id 0..N-1
    artist: np.ndarray            # int64 [N]: artist code of each track (formats.catalog's codes)
    genre: np.ndarray             # int64 [N]: genre code of each track
    n_artists: int
    n_genres: int
    path: Path

    @property
    def size(self) -> int:
        return len(self.tracks)


def load_catalog(world: str | Path) -> Catalog:
    """Read the public catalog of a world folder (or a tracks.json path)."""
    try:
        path = fmt.catalog_path(world)
    except FormatError as e:
        raise CatalogError(f"{e} (training reads the public catalog only)") from None
    if not path.is_file():
        raise CatalogError(f"no public catalog at {path}: generate the world first "
                           f"(`mlflow run . -e world` or `make world`), or pass --world DIR")
    records: list[dict] = []
    try:
        for n, rec in read_jsonl(path):
            fmt.check_record(n, rec, len(records))
            records.append(rec)
        if not records:
            raise FormatError("catalog is empty")
        fmt.check_count(path, len(records))
    except FormatError as e:
        raise CatalogError(f"{path}: malformed catalog ({e}); regenerate the world "
                           f"(`mlflow run . -e world` or `{fmt.WORLD_COMMAND}`)") from None
    df = pd.DataFrame.from_records(records)
    df["popularity"] = df["popularity"].fillna(0.0).astype(np.float64) if "popularity" in df else 0.0
    artist, artists = fmt.encode(df["artist"].tolist())
    genre, genres = fmt.encode(df["genre"].tolist())
    return Catalog(tracks=df.set_index("track", drop=False), artist=artist.astype(np.int64),
                   genre=genre.astype(np.int64), n_artists=len(artists),
                   n_genres=len(genres), path=path)
