"""Offline metrics of a fitted model: the course's MSE against naive baselines, and how
well it ranks the next tracks users actually listened to (recall@k, NDCG@k)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from training.learning.model import EmbeddingModel


@torch.no_grad()
def mse_report(model: EmbeddingModel, train: pd.DataFrame, test: pd.DataFrame,
               seed: int = 0) -> dict[str, float]:
    """Test MSE of the model, of the train mean, and of random predictions (course)."""
    c = torch.as_tensor(test["context"].to_numpy().copy())
    t = torch.as_tensor(test["target"].to_numpy().copy())
    n = torch.as_tensor(test["artist_plays"].to_numpy(dtype=np.float32, copy=True)
                        if "artist_plays" in test else np.zeros(len(test), dtype=np.float32))
    y = test["time"].to_numpy(dtype=np.float64)
    pred = np.concatenate([model.predict_time(c[i:i + 65536], t[i:i + 65536], n[i:i + 65536]).numpy()
                           for i in range(0, len(y), 65536)]).astype(np.float64)
    mean = float(train["time"].mean())
    rng = np.random.default_rng(seed)
    rand = rng.uniform(0.0, 1.0, size=len(y))
    return {"test_mse": float(np.mean((pred - y) ** 2)),
            "test_mse_const": float(np.mean((mean - y) ** 2)),
            "test_mse_random": float(np.mean((rand - y) ** 2))}


@torch.no_grad()
def ranking_report(model: EmbeddingModel, test: pd.DataFrame, ks=(10, 50),
                   relevant_time: float = 0.5, max_queries: int = 20000, seed: int = 0,
                   block: int = 1024) -> dict[str, float]:
    """Rank of each held-out listened track (time >= relevant_time) among all tracks.

    One relevant track per query, so recall@k is the hit rate and NDCG@k = 1/log2(rank+2).
    The context track itself is never counted (i2i lists exclude it too).
    """
    rel = test[(test["time"] >= relevant_time) & (test["target"] != test["context"])]
    out: dict[str, float] = {"ranking_queries": float(len(rel))}
    if rel.empty:
        for k in ks:
            out[f"recall_at_{k}"] = out[f"ndcg_at_{k}"] = float("nan")
        return out
    if len(rel) > max_queries:
        rel = rel.sample(max_queries, random_state=seed)
        out["ranking_queries"] = float(max_queries)
    score = model.scorer()
    c = torch.as_tensor(rel["context"].to_numpy().copy())
    t = torch.as_tensor(rel["target"].to_numpy().copy())
    ranks = []
    for s in range(0, len(c), block):
        cb, tb = c[s:s + block], t[s:s + block]
        scores = score(cb)
        rows = torch.arange(len(cb))
        scores[rows, cb] = -torch.inf
        own = scores[rows, tb].unsqueeze(1)
        ranks.append((scores > own).sum(1))
    r = torch.cat(ranks).numpy()
    for k in ks:
        hit = r < k
        out[f"recall_at_{k}"] = float(hit.mean())
        out[f"ndcg_at_{k}"] = float(np.where(hit, 1.0 / np.log2(r + 2.0), 0.0).mean())
    return out
