"""Train one learner on a window of logs and register what it learned: a learner's MLflow run.

One run logs the learner, its settings, the window (days, logs, the dataset's digest as
an MLflow dataset input), its figures and per-epoch series, adds the serving policy's
constants estimated from the window (`training.learning.policy_params`) to the learner's
own policy parameters, and registers the lists as a
new version of `botify-i2i` (`training.registry.versions`; alias `challenger`) with its
lineage as version tags (days_trained_on, dataset_digest, learner, and the caller's).

    python -m training.learning.learn --learner cooccurrence \\
        --config training/config/learners/cooccurrence.yml --log data/loop/<run>/day3/logs --world data/world
    python -m training.learning.learn --learner mypackage.module:MyLearner --log logs/ --world data/world
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import yaml

from formats import FormatError
from formats import learned as learned_format
from formats import lists as list_format
from training.paths import REPO
from training.runlog import log_params
from training.learning import policy_params
from training.learning.learners.base import Learned, LearnerError, LearnerSpec
from training.learning.window import Window

EXPERIMENT = "botify-training"


@dataclass
class Trained:
    """A learner's run: its registered version (None when not registered) and what it learned."""

    name: str
    run_id: str
    version: str | None
    lists: np.ndarray
    policy: dict[str, Any]
    figures: dict[str, float]
    trained_on: tuple[int, ...]


def log_dataset(events: pd.DataFrame, digest: str, sources: list[str]) -> None:
    """The window's events as the active run's MLflow dataset input (named by its digest)."""
    import mlflow
    ds_df = events.assign(experiments=[json.dumps(e, sort_keys=True) for e in events["experiments"]])
    with warnings.catch_warnings():   # a path source is ambiguous to MLflow; it is a file
        warnings.simplefilter("ignore")
        ds = mlflow.data.from_pandas(ds_df, source=sources[0] if len(sources) == 1 else ",".join(sources),
                                     name="events", digest=digest[:16])
        mlflow.log_input(ds, context="training")   # infers the schema: MLflow's integer-column hint


def check_lists(learned: Learned, n_tracks: int, k: int, who: str, n_artists: int | None = None) -> None:
    """A learner's lists as the service will read them: one row per track, k wide, int32 (and
    its exploration table, one row per catalog artist)."""
    lists = np.asarray(learned.lists)
    try:
        list_format.check_table(lists, "track", n_tracks, n_tracks)
    except FormatError as e:
        raise LearnerError(f"learner {who} returned lists the service would refuse: {e}") from None
    if lists.shape[1] != k:
        raise LearnerError(f"learner {who} returned lists {lists.shape[1]} long, {k} asked")
    if learned.explore is not None:
        try:
            learned_format.check_explore(*learned.explore, n_artists)
        except FormatError as e:
            raise LearnerError(f"learner {who} returned an exploration table the service would refuse: {e}") from None


def train_learner(spec: LearnerSpec, window: Window, *, k: int = 50, register: str | None = None,
                  run_name: str | None = None, tags: Mapping[str, Any] | None = None,
                  root: Path = REPO) -> Trained:
    """Train `spec`'s learner on `window` in a run (a nested child of the active one, if any)
    and, with `register` (a registered model name), register its lists as a new version."""
    import mlflow

    from training.registry import tracking, versions

    learner = spec.make(root)
    tracking.setup(EXPERIMENT)
    days = ",".join(map(str, window.days))
    with tracking.step_run(run_name or f"learn {spec.name}", entry="learn") as run, \
            tempfile.TemporaryDirectory(prefix="botify-learn-") as tmp:
        settings = learner.describe()
        log_params({**settings, "learner": spec.learner, "learner_name": spec.name,
                             "config": spec.config or "", "k": k, "seed": window.seed, "logs": ",".join(window.logs),
                             "world": str(window.world), "catalog_tracks": window.catalog.size,
                             "days_trained_on": days, "register": register or ""})
        mlflow.set_tags({"dataset_digest": window.digest, "learner": spec.learner, "botify.entry": "learn"})
        log_dataset(window.events, window.digest, window.sources)
        t0 = time.perf_counter()
        learned = learner.learn(window, k, Path(tmp))
        seconds = time.perf_counter() - t0
        check_lists(learned, window.catalog.size, k, f"{spec.name} ({spec.learner})", window.catalog.n_artists)
        # the policy's constants estimated from the window travel with any learner's lists;
        # what the learner estimated itself stays
        estimates = window.policy_estimates
        learned = dataclasses.replace(learned, policy=policy_params.merged(learned.policy,
                                                                           policy_params.policy(estimates)))
        for key, series in learned.history.items():
            for step, value in enumerate(series):
                mlflow.log_metric(key, value, step=step)
        lists = np.asarray(learned.lists)
        figures = {**learned.figures, **policy_params.figures(estimates), "learn_seconds": seconds,
                   "list_fill": float((lists >= 0).mean()),
                   "list_coverage": float(len(np.unique(lists[lists >= 0])) / len(lists))}
        mlflow.log_metrics({key: float(v) for key, v in figures.items() if np.isfinite(v)})
        version = None
        if register:
            meta = {"name": spec.name, "learner": spec.learner, "config": settings,
                    "layout": learner.layout().describe(), "window": window.describe(), "figures": figures}
            version = versions.register(learned, meta, name=register, tags={
                "days_trained_on": days, "dataset_digest": window.digest, "learner": spec.learner,
                "learner_name": spec.name, **dict(tags or {})})
            print(f"registered {register} version {version} ({spec.name}) as @{tracking.CHALLENGER}", flush=True)
        return Trained(spec.name, run.info.run_id, version, lists, dict(learned.policy), figures, window.days)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--learner", default="embedding",
                    help="a learner's name (embedding, cooccurrence, item2vec, als) or import path module:Class")
    ap.add_argument("--config", default=None, help="the learner's YAML (default: its built-in settings)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    ap.add_argument("--name", default="", help="a name for reports ('': the learner's)")
    ap.add_argument("--log", action="append", required=True, help="event log file or folder; repeatable")
    ap.add_argument("--days", default="", help="the days the logs are, comma-separated (lineage)")
    ap.add_argument("--world", default="data/world", help="world folder (only public/ is read)")
    ap.add_argument("--seed", type=int, default=424242)
    ap.add_argument("--k", type=int, default=50, help="list length")
    ap.add_argument("--register", default="botify-i2i", help="registered model name ('': don't register)")
    args = ap.parse_args(argv)
    try:
        overrides = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--set {item!r}: expected KEY=VALUE")
            overrides[key] = yaml.safe_load(value)
        spec = LearnerSpec(args.name or args.learner, args.learner, args.config, overrides)
        days = tuple(int(d) for d in args.days.split(",") if d.strip())
        window = Window(tuple(p for item in args.log for p in item.split(",") if p), args.world, args.seed, days)
        res = train_learner(spec, window, k=args.k, register=args.register or None)
    except (ValueError, FileNotFoundError) as e:   # LearnerError, EventLogError, CatalogError are ValueErrors
        print(f"learn: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"run_id": res.run_id, "version": res.version,
                      "figures": {k: round(v, 5) for k, v in res.figures.items()}}))
    return 0


if __name__ == "__main__":
    from training.jobs.lifecycle import run_entry_point
    sys.exit(run_entry_point("learn", main))  # cancellable: see training/jobs/lifecycle.py
