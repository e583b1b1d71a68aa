"""The public catalog, the only view of the world training may have.

Tracks' artist and genre become integer codes so a model can share what it learns about
one track with every track of the same artist or genre (tracks never played in the logs
still get a sensible embedding).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


class CatalogError(ValueError):
    """The world or its public catalog is missing or malformed."""


@dataclass(frozen=True)
class Catalog:
    tracks: pd.DataFrame          # one row per track, index = track id 0..N-1
    artist: np.ndarray            # int64 [N]: artist code of each track
    genre: np.ndarray             # int64 [N]: genre code of each track
    n_artists: int
    n_genres: int
    path: Path

    @property
    def size(self) -> int:
        return len(self.tracks)


def catalog_path(world: str | Path) -> Path:
    """`<world>/public/tracks.json`; a path to a tracks.json file is taken as is."""
    p = Path(world)
    if p.is_file():
        return p
    return p / "public" / "tracks.json"


def load_catalog(world: str | Path) -> Catalog:
    """Read the public catalog of a world folder (or a tracks.json path)."""
    path = catalog_path(world)
    if "hidden" in path.resolve().parts:
        raise CatalogError(f"{path}: training reads only a world's public/ folder")
    if not path.exists():
        raise CatalogError(f"no public catalog at {path}: generate the world first "
                           f"(`mlflow run . -e world` or `make world`), or pass --world DIR")
    try:
        df = pd.read_json(path, lines=True)
    except ValueError as e:
        raise CatalogError(f"{path} is not JSON lines ({e}); regenerate the world") from None
    need = {"track", "artist", "genre"}
    if df.empty or not need <= set(df.columns):
        raise CatalogError(f"{path} lacks {sorted(need - set(df.columns)) or 'rows'}; "
                           f"regenerate the world")
    df = df.sort_values("track", kind="stable").reset_index(drop=True)
    if not np.array_equal(df["track"].to_numpy(), np.arange(len(df))):
        raise CatalogError(f"{path}: track ids must be 0..N-1 in order")
    artist_codes, artists = pd.factorize(df["artist"], sort=True)
    genre_codes, genres = pd.factorize(df["genre"], sort=True)
    if "popularity" not in df.columns:
        df["popularity"] = 0.0
    return Catalog(tracks=df.set_index("track", drop=False), artist=artist_codes.astype(np.int64),
                   genre=genre_codes.astype(np.int64), n_artists=len(artists),
                   n_genres=len(genres), path=path)
