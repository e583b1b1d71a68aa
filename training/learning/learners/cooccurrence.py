"""Session co-occurrence, cosine-normalised: the standard item-to-item baseline.

Two tracks are neighbours as often as sessions liked both: count(i, j) / sqrt(count(i) x
count(j)) (+ `shrink` in the denominator, so a pair seen once weighs less), over each
session's liked tracks (`training.learning.pairs.liked_items`: listened at least
`liked_time`, the first track always). Layout (`training.learning.layout`): the anchor's
artist leads (`lead` places), then the neighbours by cosine, at most `max_per_artist` per
artist; a track no liked session met (or met with too few neighbours) is filled from the
catalog: its artist's popular tracks, then its public tag's. No policy parameters, no files.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from training.learning.layout import Layout, lay_out
from training.learning.learners.base import Learned, Learner
from training.learning.pairs import liked_items
from training.learning.window import Window


@dataclass
class CooccurrenceSettings(Layout):
    liked_time: float = 0.5     # a track listened this long is liked by its session
    shrink: float = 0.0         # added to the cosine's denominator (0: plain cosine)
    min_count: int = 1          # sessions a pair needs to be a candidate
    pool: int = 100             # candidates per track kept for the layout


def baskets(window: Window, liked_time: float, weighted: bool = False) -> sp.csr_matrix:
    """Sessions x tracks of the window: 1 (`weighted`: the listened time) where a session
    liked the track (`training.learning.pairs.liked_items`): what the standard peers learn from."""
    items = liked_items(window.sessions, liked_time)
    rows = pd.factorize(items["session_id"])[0]
    data = items["time"].to_numpy(np.float32) if weighted else np.ones(len(items), dtype=np.float32)
    return sp.csr_matrix((data, (rows, items["track"].to_numpy())),
                         shape=(int(rows.max(initial=-1)) + 1, window.catalog.size))


def top_per_row(m: sp.spmatrix, pool: int) -> np.ndarray:
    """Each row's `pool` largest entries' columns, best first (ties by column), -1 pads."""
    m = m.tocoo()
    out = np.full((m.shape[0], pool), -1, dtype=np.int64)
    order = np.lexsort((m.col, -m.data, m.row))
    row, col = m.row[order], m.col[order]
    first = np.searchsorted(row, row, side="left")
    rank = np.arange(len(row)) - first
    keep = rank < pool
    out[row[keep], rank[keep]] = col[keep]
    return out


class CooccurrenceLearner(Learner):
    Settings = CooccurrenceSettings

    def learn(self, window: Window, k: int, workdir: Path) -> Learned:
        s = self.settings
        t0 = time.perf_counter()
        x = baskets(window, s.liked_time)
        counts = (x.T @ x).tocsr()
        seen = counts.diagonal().astype(np.float64)
        counts.setdiag(0)
        counts.eliminate_zeros()
        if s.min_count > 1:
            counts.data[counts.data < s.min_count] = 0
            counts.eliminate_zeros()
        c = counts.tocoo()
        score = c.data / (np.sqrt(seen[c.row] * seen[c.col]) + s.shrink)
        candidates = top_per_row(sp.coo_matrix((score, (c.row, c.col)), shape=c.shape), s.pool)
        lists = lay_out(candidates, window.catalog, k, self.layout())
        figures = {"sessions": float(x.shape[0]), "liked_items": float(x.nnz),
                   "pairs": float(c.nnz // 2), "tracks_with_neighbours": float((candidates[:, 0] >= 0).sum()),
                   "training_seconds": time.perf_counter() - t0}
        return Learned(lists, {}, figures)
