"""Top-k item-to-item lists from embedding tables: blocked matrix products + torch.topk.

A block of contexts is scored against every target at once (one matmul), the track
itself is masked, and topk keeps the best k; memory stays at block x N floats.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


@torch.no_grad()
def topk_i2i(context: np.ndarray, target: np.ndarray, bias: np.ndarray | None = None,
             k: int = 50, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(indices [N, k], scores [N, k]) best first, each row excluding its own track."""
    n = context.shape[0]
    if target.shape[0] != n:
        raise ValueError(f"context has {n} rows, target {target.shape[0]}: same catalog needed")
    k = min(k, n - 1)
    C = torch.from_numpy(np.ascontiguousarray(context, dtype=np.float32))
    T = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)).T.contiguous()
    b = torch.from_numpy(np.asarray(bias, dtype=np.float32)) if bias is not None else None
    idx = np.empty((n, k), dtype=np.int64)
    val = np.empty((n, k), dtype=np.float32)
    for s in range(0, n, block):
        e = min(n, s + block)
        scores = C[s:e] @ T
        if b is not None:
            scores += b
        rows = torch.arange(e - s)
        scores[rows, rows + s] = -torch.inf
        v, i = torch.topk(scores, k, dim=1, sorted=True)
        idx[s:e] = i.numpy()
        val[s:e] = v.numpy()
    return idx, val


def write_i2i(path: str | Path, lists: np.ndarray) -> Path:
    """JSON lines {"track": t, "recommendations": [...]} for t = 0..N-1 (the contract)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for t, row in enumerate(lists.tolist()):
            fh.write(json.dumps({"track": t, "recommendations": row}, separators=(", ", ": ")))
            fh.write("\n")
    tmp.replace(path)   # never leave a half-written file where the service looks
    return path


def read_i2i(path: str | Path) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                out[int(obj["track"])] = [int(x) for x in obj["recommendations"]]
    return out
