"""Implicit ALS: the `implicit` package's alternating least squares (CPU) on sessions x
tracks, each session's liked tracks its positives with confidence 1 + alpha x listened time.

Tracks are neighbours when their item factors are close by cosine. Layout
(`training.learning.layout`): the anchor's artist leads (`lead` places), then the
neighbours, at most `max_per_artist` per artist; a track no session liked (its factors
never met data) is filled from the catalog: its artist's popular tracks, then its public
tag's. One thread and the window's seed, so a seed gives the same factors. No policy
parameters; its files: the item factors (`factors.npy`, `tracks.npy`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.learning.i2i import cosine_candidates
from training.learning.layout import Layout, lay_out
from training.learning.learners.base import Learned, Learner, save_arrays
from training.learning.learners.cooccurrence import baskets
from training.learning.window import Window


@dataclass
class ALSSettings(Layout):
    liked_time: float = 0.5     # a track listened this long is a positive of its session
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 2.0          # confidence per unit of listened time (implicit's alpha scales it)
    iterations: int = 15
    pool: int = 100             # candidates per track kept for the layout


class ALSLearner(Learner):
    Settings = ALSSettings

    def learn(self, window: Window, k: int, workdir: Path) -> Learned:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits
        s = self.settings
        t0 = time.perf_counter()
        n = window.catalog.size
        x = baskets(window, s.liked_time, weighted=True)
        with threadpool_limits(1, "blas"):   # implicit's own loop is the parallel part; BLAS threads fight it
            model = AlternatingLeastSquares(factors=s.factors, regularization=s.regularization, alpha=s.alpha,
                                            iterations=s.iterations, num_threads=1, random_state=window.seed)
            model.fit(x, show_progress=False)
        tracks = np.flatnonzero(np.diff(x.tocsc().indptr) > 0)
        factors = np.asarray(model.item_factors)[tracks]
        candidates = cosine_candidates(factors, tracks, n, s.pool)
        lists = lay_out(candidates, window.catalog, k, self.layout())
        out = save_arrays(workdir, factors=factors.astype(np.float32), tracks=tracks.astype(np.int64))
        figures = {"sessions": float(x.shape[0]), "tracks_with_factors": float(len(tracks)),
                   "training_seconds": time.perf_counter() - t0}
        return Learned(lists, {}, figures, out)
