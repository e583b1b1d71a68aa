"""Fit an EmbeddingModel on pairs: mini-batch Adam, early stopping on validation loss.

Whole epochs run on tensors (one permutation, slices, gathers): no Python loop over rows,
so a million pairs take seconds on two cores. Every random draw (init, shuffling,
sampled negatives) comes from the seed.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.learning.model import EmbeddingModel

OBJECTIVES = ("mse", "bce")


@dataclass
class FitConfig:
    objective: str = "mse"          # mse: regression on time (course); bce: sigmoid + soft labels
    negatives: int = 0              # sampled random targets per pair, labelled time 0
    negative_weight: float = 1.0
    duel_weight: float = 0.0        # weight of the within-session duels' pairwise loss (0: none)
    lr: float = 1e-2
    weight_decay: float = 1e-5
    batch_size: int = 4096
    max_epochs: int = 50
    patience: int = 3               # epochs without val improvement before stopping
    min_delta: float = 1e-5
    seed: int = 0
    progress: bool = True


@dataclass
class FitResult:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False


def set_threads(n: int | None = None, purpose: str = "train") -> int:
    """Torch threads: 1 for training, every core for the i2i export (BOTIFY_TORCH_THREADS overrides).

    A training step is many small ops (gathers of a few thousand rows); spreading them
    over OpenMP threads on two cores that other processes also use costs more than it
    saves (measured: a 4096-pair forward pass 3 ms on one thread, 50 ms on two under
    load), and one thread keeps float sums in one order, so a seed gives the same numbers
    on any machine. The export is large matrix products, which do scale with cores.
    """
    import os
    env = int(os.environ.get("BOTIFY_TORCH_THREADS", 0) or 0)
    n = n or env or (1 if purpose == "train" else (os.cpu_count() or 1))
    torch.set_num_threads(n)
    return n


def tensors(pairs: pd.DataFrame) -> tuple[torch.Tensor, ...]:
    """(context, target, time, prior plays of the target's artist) as tensors."""
    plays = (pairs["artist_plays"].to_numpy(dtype=np.float32, copy=True) if "artist_plays" in pairs
             else np.zeros(len(pairs), dtype=np.float32))
    return (torch.as_tensor(pairs["context"].to_numpy(dtype=np.int64, copy=True)),
            torch.as_tensor(pairs["target"].to_numpy(dtype=np.int64, copy=True)),
            torch.as_tensor(pairs["time"].to_numpy(dtype=np.float32, copy=True)),
            torch.as_tensor(plays))


def _loss(model: EmbeddingModel, objective: str, c, t, y, n=None, w=None) -> torch.Tensor:
    s = model.pair_scores(c, t)
    if objective == "bce":
        if model.discount_logit is None:
            return F.binary_cross_entropy_with_logits(s, y, weight=w, reduction="sum")
        # p = sigmoid(s) * d^n: BCE written in logs, clamped away from log(1) = 0
        logp = (F.logsigmoid(s) + model.log_discount(n)).clamp(max=-1e-6)
        log1mp = torch.log(-torch.expm1(logp))
        nll = -(y * logp + (1 - y) * log1mp)
        return (nll * w).sum() if w is not None else nll.sum()
    pred = s * torch.exp(torch.as_tensor(model.log_discount(n)))
    err = (pred - y) ** 2
    return (err * w).sum() if w is not None else err.sum()


def duel_tensors(duels: pd.DataFrame | None) -> tuple[torch.Tensor, ...] | None:
    """(context, winner, loser, weight) of `training.learning.pairs.build_duels` as tensors."""
    if duels is None or len(duels) == 0:
        return None
    return tuple(torch.as_tensor(duels[c].to_numpy(dtype=d, copy=True))
                 for c, d in (("context", np.int64), ("winner", np.int64), ("loser", np.int64),
                              ("weight", np.float32)))


def _duel_loss(model: EmbeddingModel, c, w, lo, wt) -> torch.Tensor:
    """Weighted pairwise (BPR) loss: the winner should outscore the loser for the same context."""
    return -(F.logsigmoid(model.pair_scores(c, w) - model.pair_scores(c, lo)) * wt).sum()


@torch.no_grad()
def evaluate_loss(model: EmbeddingModel, objective: str, data, batch: int = 65536,
                  duels: tuple[torch.Tensor, ...] | None = None, duel_weight: float = 0.0) -> float:
    """Mean loss on observed pairs (no sampled negatives, so epochs compare), plus
    `duel_weight` x the mean duel loss when duels are given: the loss the fit minimises."""
    c, t, y, n = data
    total = 0.0
    for i in range(0, len(y), batch):
        sl = slice(i, i + batch)
        total += float(_loss(model, objective, c[sl], t[sl], y[sl], n[sl]))
    loss = total / max(1, len(y))
    if duels is not None and duel_weight:
        dl = sum(float(_duel_loss(model, *(x[i:i + batch] for x in duels)))
                 for i in range(0, len(duels[0]), batch))
        loss += duel_weight * dl / len(duels[0])
    return loss


def _optimizer(model: torch.nn.Module, cfg: FitConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if getattr(model, "sparse", False):
        from training.learning.optim import LazyAdam
        return LazyAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    try:
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


def fit(model: EmbeddingModel, train: pd.DataFrame, val: pd.DataFrame, cfg: FitConfig,
        on_epoch: Callable[[int, float, float, float], None] | None = None,
        duels: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> FitResult:
    """Train until validation loss stops improving; the model ends at its best epoch.

    `duels` (train, val) of `training.learning.pairs.build_duels`, with `cfg.duel_weight` > 0: each
    batch of pairs also takes an equal share of the shuffled duels, and the pairwise loss
    joins the batch's loss (and the validation loss early stopping watches)."""
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {cfg.objective!r}: choose one of {OBJECTIVES}")
    if cfg.objective == "bce" and not model.sigmoid:
        raise ValueError("objective 'bce' needs a model built with sigmoid=True")
    gen = torch.Generator().manual_seed(cfg.seed)
    c_all, t_all, y_all, n_all = tensors(train)
    val_data = tensors(val)
    dw = cfg.duel_weight
    d_train, d_val = (duel_tensors(duels[0]), duel_tensors(duels[1])) if duels is not None and dw else (None, None)
    n, n_tracks = len(y_all), model.n_tracks
    opt = _optimizer(model, cfg)
    result = FitResult()
    best, best_state, bad = math.inf, copy.deepcopy(model.state_dict()), 0
    n_batches = math.ceil(n / cfg.batch_size)
    k = cfg.negatives
    for epoch in range(cfg.max_epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen)
        if d_train is not None:
            n_duels = len(d_train[0])
            d_perm = torch.randperm(n_duels, generator=gen)
            d_batch = math.ceil(n_duels / n_batches)
        total = 0.0
        bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False,
                   disable=not cfg.progress, mininterval=1.0)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            c, t, y, pl = c_all[idx], t_all[idx], y_all[idx], n_all[idx]
            w = None
            if k:
                b = len(idx)
                c = torch.cat([c, c.repeat(k)])
                t = torch.cat([t, torch.randint(n_tracks, (b * k,), generator=gen)])
                y = torch.cat([y, y.new_zeros(b * k)])
                pl = torch.cat([pl, pl.new_zeros(b * k)])
                w = torch.cat([y.new_ones(b), y.new_full((b * k,), cfg.negative_weight)])
            loss = _loss(model, cfg.objective, c, t, y, pl, w)
            step = loss / len(idx)
            if d_train is not None:
                j = i // cfg.batch_size
                di = d_perm[j * d_batch:(j + 1) * d_batch]
                if len(di):
                    step = step + dw * _duel_loss(model, *(x[di] for x in d_train)) / len(di)
            opt.zero_grad(set_to_none=True)
            step.backward()
            opt.step()
            total += float(loss.detach())
            bar.update(1)
        bar.close()
        model.eval()
        train_loss = total / n
        val_loss = evaluate_loss(model, cfg.objective, val_data, duels=d_val, duel_weight=dw)
        secs = time.perf_counter() - t0
        result.train_loss.append(train_loss)
        result.val_loss.append(val_loss)
        result.epoch_seconds.append(secs)
        if cfg.progress:
            tqdm.write(f"epoch {epoch + 1}: train {train_loss:.5f} val {val_loss:.5f} ({secs:.1f}s)")
        if on_epoch:
            on_epoch(epoch, train_loss, val_loss, secs)
        if val_loss < best - cfg.min_delta:
            best, best_state, bad = val_loss, copy.deepcopy(model.state_dict()), 0
            result.best_epoch = epoch
        else:
            bad += 1
            if bad >= cfg.patience:
                result.stopped_early = True
                break
    model.load_state_dict(best_state)
    return result
