"""The recommenders that need only the public catalog (and, optionally, a log's play counts)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..catalog import Catalog
from .base import Context, top_tracks
from .options import RecommenderOptions, option


class Random:
    """A uniformly random catalog track: the course's control."""

    def __init__(self, catalog: Catalog, options: RecommenderOptions = RecommenderOptions()) -> None:
        self.n = len(catalog)

    def recommend(self, ctx: Context) -> int:
        ctx.propensity = 1.0 / self.n
        return ctx.rng.randrange(self.n)


class TopPop:
    """A random track among the `top` most played in a log, or the catalog's most popular."""

    @dataclass(frozen=True)
    class Options(RecommenderOptions):
        top: int = option(100, within=">= 1", doc="how many of the most played tracks to draw from")
        log: np.ndarray | None = option(None, artifact="log",
                                        doc="draw from the most played in this log instead of the catalog's most popular")

    def __init__(self, catalog: Catalog, options: Options = Options()) -> None:
        self.tracks = top_tracks(catalog, options.log, options.top)

    def recommend(self, ctx: Context) -> int:
        ctx.propensity = 1.0 / len(self.tracks)  # distinct tracks (argsort of the scores)
        return self.tracks[ctx.rng.randrange(len(self.tracks))]


class StickyArtist:
    """A random track by the previous track's artist."""

    def __init__(self, catalog: Catalog, options: RecommenderOptions = RecommenderOptions()) -> None:
        self.artist = catalog.artist_list()
        self.by_artist = catalog.artist_track_lists

    def recommend(self, ctx: Context) -> int:
        tracks = self.by_artist[self.artist[ctx.prev]]
        ctx.propensity = 1.0 / len(tracks)
        return tracks[ctx.rng.randrange(len(tracks))]
