"""Top-k item-to-item lists from embedding tables: blocked matrix products + torch.topk.

A block of contexts is scored against every target at once (one matmul), the track
itself is masked, and topk keeps the best k; memory stays at block x N floats.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


@torch.no_grad()
def topk_scores(score: Callable[[torch.Tensor], torch.Tensor], n: int, k: int = 50,
                block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(indices [N, k], scores [N, k]) best first; `score(ids [B]) -> [B, N]`; no self."""
    k = min(k, n - 1)
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=np.float32)
    for s in range(0, n, block):
        e = min(n, s + block)
        scores = score(torch.arange(s, e))
        rows = torch.arange(e - s)
        scores[rows, rows + s] = -torch.inf
        v, i = torch.topk(scores, k, dim=1, sorted=True)
        idx[s:e] = i.numpy()
        val[s:e] = v.numpy()
    return idx, val


def topk_i2i(context: np.ndarray, target: np.ndarray, bias: np.ndarray | None = None,
             k: int = 50, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by <context_i, target_j> + bias_j from plain tables (e.g. exported .npy)."""
    n = context.shape[0]
    if target.shape[0] != n:
        raise ValueError(f"context has {n} rows, target {target.shape[0]}: same catalog needed")
    C = torch.from_numpy(np.ascontiguousarray(context, dtype=np.float32))
    T = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)).T.contiguous()
    b = (torch.from_numpy(np.asarray(bias, dtype=np.float32)) if bias is not None
         else torch.zeros(n))
    return topk_scores(lambda ids: torch.addmm(b, C[ids], T), n, k, block)


def model_i2i(model, k: int = 50, max_per_artist: int = 0, pool: int = 8,
              block: int = 2048) -> np.ndarray:
    """A model's i2i lists, ranked by its own score; optionally at most `max_per_artist`
    tracks of one artist per list (from the best `pool * k` candidates), because a
    listener discounts each replay of an artist and a SessionAware recommender skips
    artists it already played: list slots beyond that are wasted."""
    n = model.n_tracks
    if max_per_artist <= 0:
        return topk_scores(model.scorer(), n, k, block)[0]
    if not getattr(model, "features", False):
        raise ValueError("max_per_artist needs a model trained with the catalog's features")
    cands, _ = topk_scores(model.scorer(), n, min(n - 1, pool * k), block)
    return cap_per_group(cands, model.artist_of.numpy(), min(k, n - 1), max_per_artist)


def cap_per_group(candidates: np.ndarray, group: np.ndarray, k: int, cap: int) -> np.ndarray:
    """Keep each row's best candidates with at most `cap` per group (e.g. per artist).

    `candidates` [N, P] is best first; the result [N, k] keeps that order, taking the
    first `cap` candidates of each group, then (if a row runs short) the next `cap` of
    each group, and so on.
    Vectorized over rows: a stable sort by group gives each candidate its occurrence
    number within its group; no loop over tracks.
    """
    n, p = candidates.shape
    g = group[candidates]                                   # [N, P]
    order = np.argsort(g, axis=1, kind="stable")            # groups together, best first
    gs = np.take_along_axis(g, order, axis=1)
    pos = np.arange(p)
    start = np.where(np.concatenate([np.ones((n, 1), bool), gs[:, 1:] != gs[:, :-1]], axis=1),
                     pos, 0)
    start = np.maximum.accumulate(start, axis=1)
    occ_sorted = pos - start                                # 0 for a group's best, 1, ...
    occ = np.empty_like(occ_sorted)
    np.put_along_axis(occ, order, occ_sorted, axis=1)
    key = (occ // cap) * p + pos        # tiers: first `cap` of each group, the next `cap`, ...
    pick = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(candidates, pick, axis=1)


def cosine_candidates(vectors: np.ndarray, tracks: np.ndarray, n_tracks: int, pool: int,
                      block: int = 2048) -> np.ndarray:
    """Each track's `pool` nearest tracks by cosine of `vectors` ([V, d], row i is track
    `tracks[i]`), as a [n_tracks, pool] table; tracks without a vector get an empty row (-1)."""
    out = np.full((n_tracks, max(pool, 1)), -1, dtype=np.int64)
    if len(tracks) < 2:
        return out
    v = np.asarray(vectors, dtype=np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    idx, _ = topk_i2i(v, v, k=pool, block=block)
    out[np.asarray(tracks), :idx.shape[1]] = np.asarray(tracks)[idx]
    return out
