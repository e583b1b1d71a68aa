"""The recommenders that draw from a model's precomputed lists: per user, or per track (i2i)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..catalog import Catalog
from .base import Context, Lists, draw_from
from .options import RecommenderOptions, option


class Indexed:
    """A random track from the user's precomputed list (collaborative models); Random if none."""

    @dataclass(frozen=True)
    class Options(RecommenderOptions):
        lists: np.ndarray = option(artifact="lists", doc="the user's list: row `user` of this table")

    def __init__(self, catalog: Catalog, options: Options) -> None:
        self.lists, self.n = Lists(options.lists), len(catalog)

    def recommend(self, ctx: Context) -> int:
        user = ctx.user  # users the model never saw have no row
        return draw_from(self.lists[user] if user < len(self.lists) else [], ctx, self.n)


class Contextual:
    """A random track from the previous track's i2i list; Random if none (the course's control)."""

    @dataclass(frozen=True)
    class Options(RecommenderOptions):
        i2i: np.ndarray = option(artifact="i2i", doc="the previous track's list: row `track` of this table")

    def __init__(self, catalog: Catalog, options: Options) -> None:
        self.i2i = Lists(options.i2i)
        self.n = len(catalog)

    def recommend(self, ctx: Context) -> int:
        return draw_from(self.i2i[ctx.prev], ctx, self.n)


class I2IHistory:
    """The 2026 course's: an anchor drawn among the user's last `history` listens weighted by
    listened time, then the first track of its i2i list the user has not heard recently."""

    @dataclass(frozen=True)
    class Options(Contextual.Options):
        history: int = option(10, within=">= 1", doc="how many of the user's last listens may be the anchor")

    def __init__(self, catalog: Catalog, options: Options) -> None:
        self.i2i = Lists(options.i2i)
        self.n = len(catalog)
        self.history = options.history

    def recommend(self, ctx: Context) -> int:
        recent = ctx.history[-self.history:]
        weights = [t for _, t in recent]
        total = sum(weights)
        if total > 0:
            anchor = ctx.rng.choices(recent, weights=weights)[0][0]
            seen = {t for t, _ in recent}
            seen.update(ctx.tracks)
            picks: dict[int, int | None] = {}
            pick = picks[anchor] = self._first_unseen(anchor, seen)
            if pick is None:
                pick = ctx.rng.randrange(self.n)
            # P(pick) = sum over the recent listens of (weight share) x P(that anchor yields pick)
            p = 0.0
            for (a, _), w in zip(recent, weights):
                if w > 0:
                    got = picks[a] if a in picks else picks.setdefault(a, self._first_unseen(a, seen))
                    p += w / total * (1.0 if got == pick else 1.0 / self.n if got is None else 0.0)
            ctx.propensity = p
            return pick
        ctx.propensity = 1.0 / self.n
        return ctx.rng.randrange(self.n)

    def _first_unseen(self, anchor: int, seen: set[int]) -> int | None:
        for t in self.i2i[anchor]:
            if t not in seen:
                return t
        return None
