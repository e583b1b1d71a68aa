"""What every recommender is given and gives back: the request's `Context`, the `Recommender`
interface, and the helpers several recommenders share."""
from __future__ import annotations

import random
from typing import Protocol, Sequence

import mmh3
import numpy as np

from ..catalog import Catalog


class Context:
    """What a recommender sees of one request.

    `rng` is a generator, an int seed, or a tuple of ints whose MurmurHash3 (of their `a:b:c`
    text) is the seed. The generator is made on first use: most requests of the session-aware
    recommenders draw nothing, and making one costs more than their whole pick."""

    __slots__ = ("user", "tracks", "times", "history", "propensity", "_seed", "_rng")

    def __init__(self, user: int, tracks: Sequence[int], times: Sequence[float],
                 history: Sequence[Sequence], rng: random.Random | int | tuple[int, ...]) -> None:
        self.user = user
        self.tracks = tracks  # this session, oldest first; tracks[-1] is the previous track
        self.times = times  # listened fraction of each; times[0] = 1.0 for the user's choice
        self.history = history  # [(track, time), ...] the user's recent listens, oldest first
        # set by the recommender: the probability with which it chose the track it returns,
        # given this context (None: not known). The event log carries it, so training and
        # off-policy evaluation can correct for the policy that logged the data.
        self.propensity: float | None = None
        self._rng = rng if isinstance(rng, random.Random) else None
        self._seed = rng

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            seed = self._seed
            if isinstance(seed, tuple):
                seed = mmh3.hash128(":".join(map(str, seed)))
            self._rng = random.Random(seed)
        return self._rng

    @property
    def prev(self) -> int:
        return self.tracks[-1]


class Recommender(Protocol):
    """A recommender: built once per worker from the catalog and its options (`Options`, a
    dataclass of `service.recommenders.options.Options`), then asked once per request."""

    def __init__(self, catalog: Catalog, options: object) -> None: ...

    def recommend(self, ctx: Context) -> int: ...   # and sets ctx.propensity when it knows it


class Lists:
    """Rows of a -1-padded int table as Python lists, made on access.

    The table's rows as Python lists would cost memory per recommender and worker, and give
    the cyclic GC millions of objects to traverse."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table)  # a memory map's rows read as a plain array's: no np.memmap wrapper per row
        self.lengths = (table >= 0).sum(axis=1).tolist()  # padding is at the end of each row

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> list[int]:
        return self.table[i, : self.lengths[i]].tolist()


def top_tracks(catalog: Catalog, counts: np.ndarray | None, n: int) -> list[int]:
    """The `n` most played tracks in `counts`, or the catalog's `n` most popular."""
    if counts is None:
        order = catalog.popularity_order  # made once per catalog
    else:
        order = np.argsort(-counts.astype(float), kind="stable")  # ties: lower track id first, deterministic
    return order[: max(1, min(n, len(order)))].tolist()


def draw_from(recs: list[int], ctx: Context, n_tracks: int) -> int:
    """A uniform draw from `recs` (a track listed twice is twice as likely); Random if empty."""
    if recs:
        t = recs[ctx.rng.randrange(len(recs))]
        ctx.propensity = recs.count(t) / len(recs)
        return t
    ctx.propensity = 1.0 / n_tracks
    return ctx.rng.randrange(n_tracks)
