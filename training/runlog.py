"""What a job writes into its MLflow run, written one way: params beside what `mlflow run`
logged, finite metrics (by day, on a parent and a day's run at once), files and folders, the
experiment's kind, and how long each step took.
"""
from __future__ import annotations

import re
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import mlflow
import numpy as np
from mlflow import MlflowClient

#: The experiment tag `mlflow ui` reads to choose its view: without it MLflow 3 infers "GenAI"
#: (traces, evaluations); this value opens the model-training view (runs, metrics, models).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def log_params(params: Mapping) -> None:
    """Log params on the active run, living with what `mlflow run` already logged.

    `mlflow run` logs the entry point's -P values first (e.g. `embedding_dim=0`, "the
    config's"); MLflow forbids changing a logged param, so a resolved value that differs
    is logged beside it as `<key>_resolved`. Values are cut to MLflow's 6,000 characters.
    """
    run = mlflow.active_run()
    have = MlflowClient().get_run(run.info.run_id).data.params if run else {}
    out = {}
    for k, v in params.items():
        v = str(v)[:6000]
        if k not in have:
            out[k] = v
        elif have[k] != v:
            out[f"{k}_resolved"] = v
    if out:
        mlflow.log_params(out)


def metric_name(key: str) -> str:
    """An MLflow-legal metric name (`artist_recall@50` -> `artist_recall_at_50`)."""
    return re.sub(r"[^\w./\- ]", "_", key.replace("@", "_at_"))


def log_metrics(metrics: Mapping, step: int | None = None, parent: str | None = None) -> None:
    """Finite numbers only (a NaN, e.g. the CI of an empty arm, is left out), on the active run
    and, with `parent`, on that run too (a day's figures on the loop's run, by day)."""
    clean = {metric_name(k): float(v) for k, v in metrics.items() if v is not None and np.isfinite(float(v))}
    if parent is not None:
        mlflow.log_metrics(clean, step=step, run_id=parent)
    mlflow.log_metrics(clean, step=step)


def log_path(path: str | Path, artifact_path: str | None = None) -> None:
    """A file or a whole folder as artifacts of the active run."""
    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def mark_model_training(experiment_id: str) -> None:
    """Tag the experiment so `mlflow ui` opens it on runs and models, not on GenAI traces."""
    client = MlflowClient()
    if client.get_experiment(experiment_id).tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)


class Clock:
    """Seconds spent per named step. Steps nest; each second counts for the innermost step only,
    so the steps of a day add up to the day."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._open: list[list] = []          # [name, since] of the steps running, innermost last
        self.started = time.perf_counter()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._open:
            self.seconds[self._open[-1][0]] += now - self._open[-1][1]
        self._open.append([name, now])
        try:
            yield
        finally:
            end = time.perf_counter()
            done, since = self._open.pop()
            self.seconds[done] += end - since
            if self._open:
                self._open[-1][1] = end

    def reassign(self, seconds: float, source: str, to: str) -> None:
        """Count `seconds` that `source` spent waiting on `to` as `to`'s."""
        self.seconds[source] -= seconds
        self.seconds[to] += seconds

    def total(self) -> float:
        return time.perf_counter() - self.started

    def metrics(self) -> dict[str, float]:
        """`seconds.<step>` per step and `seconds.total`."""
        return {f"seconds.{k}": v for k, v in self.seconds.items()} | {"seconds.total": self.total()}
