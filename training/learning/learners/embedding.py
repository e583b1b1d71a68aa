"""The project's learner: the contextual embedding model (`training.learning.model`) fitted
on pairs of the window's sessions, its configs `training/config/{course,seed,session,contrast}.yml`.

Lists: each track's top candidates by the model's own score, laid out with no forced lead
(a model with the catalog prior ranks the anchor's artist first by itself), at most the
config's `i2i_max_per_artist` per artist (0: no cap), and the catalog's fill for a list
left short (the model scores every track, so only a cap with too few artists among the
candidates leaves one short). Policy parameters: none of its own; the replay discount the
model fits (`discount: true`) is a figure (`model_discount`), not served: the window's own
estimate (training/learning/policy_params.py, on every version) is the closer one
(docs/results.md).
Its files: the model as `spec.json` + `weights.npz` (no pickle).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from training.learning.fit import set_threads
from training.learning.i2i import topk_scores
from training.learning.layout import Layout, lay_out
from training.learning.learners.base import Learned, Learner
from training.learning.model import save_model
from training.learning.train import TrainConfig, fit_model, prepare_window
from training.learning.window import Window

POOL = 8   # candidates per list slot the layout chooses from when it caps artists


class EmbeddingLearner(Learner):
    Settings = TrainConfig

    def layout(self) -> Layout:
        return Layout(lead=0, max_per_artist=self.settings.i2i_max_per_artist, fill="catalog")

    def describe(self) -> dict:
        """Its settings but `seed`: it draws from the window's seed, as every learner does."""
        return {k: v for k, v in super().describe().items() if k != "seed"}

    def learn(self, window: Window, k: int, workdir: Path) -> Learned:
        cfg = dataclasses.replace(self.settings, seed=window.seed)
        set_threads()
        data = prepare_window(cfg, window)
        history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "epoch_seconds": []}

        def on_epoch(epoch: int, tr: float, va: float, secs: float) -> None:
            for key, v in zip(history, (tr, va, secs)):
                history[key].append(float(v))

        model, figures = fit_model(cfg, data, on_epoch, progress=False)
        figures.update({"pairs": float(len(data.pairs)), **{f"split_{k_}": float(v) for k_, v in data.split.sizes().items()}})
        layout = self.layout()
        n = model.n_tracks
        pool = min(n - 1, POOL * k if layout.max_per_artist else k)
        set_threads(purpose="export")
        try:
            candidates, _ = topk_scores(model.scorer(), n, pool)
        finally:
            set_threads()
        lists = lay_out(candidates, window.catalog, k, layout)
        if model.discount_logit is not None:
            figures["model_discount"] = float(torch.sigmoid(model.discount_logit.detach()))
        return Learned(lists, {}, figures, save_model(model, Path(workdir) / "model"), history)
