"""Entry point `train`: service logs -> sessions -> pairs -> a registered embedding model.

One run logs every parameter, the split sizes, train/val loss per epoch, the test MSE
against the constant-mean and random baselines, recall@k / NDCG@k of held-out listened
tracks, the training time and the dataset's hash; the model is logged with a signature
as plain arrays and a JSON spec (no pickle: training.learning.model), registered as `botify-i2i`, and the new version gets the
alias `challenger` (only the experiment moves `champion`).

    python -m training.learning.train --log logs/collect --world data/world --config training/config/seed.yml
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

import numpy as np
import pandas as pd
import torch

from training.registry import tracking
from training.runlog import log_params
from training.data.catalog import CatalogError
from training.data.events import EventLogError
from training.learning.config import from_yaml
from training.learning.learn import log_dataset
from training.learning.fit import FitConfig, fit, set_threads
from training.learning.metrics import mse_report, ranking_report
from training.learning.model import EmbeddingModel
from training.learning.pairs import PairsError, build_duels, build_pairs, first_tracks, split_pairs
from training.learning.window import Window

EXPERIMENT = "botify-training"
DEFAULT_CONFIG = "training/config/course.yml"


@dataclass
class TrainConfig:
    context: str = "first"          # first | previous | session (co-listening, see pairs.py)
    window: int = 0                 # context session: positions around a liked track (0: all)
    liked_time: float = 0.5         # context session: a track listened this long is a context
    split: str = "random"
    val: float = 0.1
    test: float = 0.1
    embedding_dim: int = 10
    features: bool = False
    tied: bool = False
    bias: bool = False
    match: bool = False
    match_init: tuple = (0.0, 0.0)  # starting (same artist, same genre) weights of the prior
    feature_tables: bool = True     # with features: artist/genre vectors (False: prior only)
    ids: bool = True                # a free vector per track (with features: on top of them)
    sparse: bool = False            # sparse gradients + lazy Adam (training.learning.optim): big catalogs
    discount: bool = False          # learn the listener's replay discount of an artist
    drop_repeats: bool = False      # drop pairs whose target was already played in the session
    objective: str = "mse"
    negatives: int = 0
    negative_weight: float = 1.0
    duels: float = 0.0              # weight of the within-session duels (training.learning.pairs.build_duels)
    duel_gap: float = 0.05          # a duel needs the winner listened this much longer
    lr: float = 1e-2
    weight_decay: float = 1e-5
    batch_size: int = 4096
    max_epochs: int = 50
    patience: int = 3
    init_std: float = 0.1
    relevant_time: float = 0.5
    i2i_max_per_artist: int = 0     # the export's default for this model (0: no cap)
    seed: int = 424242

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "TrainConfig":
        return from_yaml(cls, path, **overrides)


@dataclass
class TrainResult:
    run_id: str
    version: str | None
    metrics: dict[str, float]
    split_sizes: dict[str, int]


def build_model(cfg: TrainConfig, catalog) -> EmbeddingModel:
    torch.manual_seed(cfg.seed)
    kw = {}
    if cfg.features:
        kw = dict(artist=catalog.artist, genre=catalog.genre, n_artists=catalog.n_artists,
                  n_genres=catalog.n_genres)
    return EmbeddingModel(catalog.size, cfg.embedding_dim, tied=cfg.tied, bias=cfg.bias,
                          sigmoid=cfg.objective == "bce", match=cfg.match,
                          discount=cfg.discount, ids=cfg.ids, sparse=cfg.sparse,
                          match_init=tuple(cfg.match_init), feature_tables=cfg.feature_tables, init_std=cfg.init_std, **kw)


@dataclass
class Prepared:
    catalog: object
    events: pd.DataFrame
    sessions: pd.DataFrame
    pairs: pd.DataFrame
    split: object
    duels: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None   # train, val, test
    digest: str
    sources: list[str]


def prepare(cfg: TrainConfig, logs: list[str], world: str) -> Prepared:
    """Catalog, events, sessions, pairs and split for a config: everything before fitting."""
    return prepare_window(cfg, Window(tuple(logs), world, cfg.seed))


def prepare_window(cfg: TrainConfig, window: Window) -> Prepared:
    """`prepare` of a window already open (its events parsed once for every learner)."""
    catalog, sessions = window.catalog, window.sessions
    pairs = build_pairs(sessions, cfg.context, artist=catalog.artist, window=cfg.window,
                        liked_time=cfg.liked_time)
    if cfg.drop_repeats:
        pairs = pairs[~pairs["repeat"]].reset_index(drop=True)
    split = split_pairs(pairs, cfg.split, cfg.val, cfg.test, seed=cfg.seed)
    duels = None
    if cfg.duels:
        first = first_tracks(sessions)
        duels = tuple(build_duels(part, first, catalog.artist, cfg.duel_gap)
                      for part in (split.train, split.val, split.test))
    return Prepared(catalog, window.events, sessions, pairs, split, duels, window.digest, window.sources)


def fit_config(cfg: TrainConfig, progress: bool = True) -> FitConfig:
    return FitConfig(objective=cfg.objective, negatives=cfg.negatives,
                     negative_weight=cfg.negative_weight, duel_weight=cfg.duels, lr=cfg.lr,
                     weight_decay=cfg.weight_decay, batch_size=cfg.batch_size,
                     max_epochs=cfg.max_epochs, patience=cfg.patience, seed=cfg.seed,
                     progress=progress)


def fit_model(cfg: TrainConfig, data: Prepared, on_epoch=None,
              progress: bool = True) -> tuple[EmbeddingModel, dict[str, float]]:
    """Build and fit the config's model on prepared data; its offline figures: training
    time and epochs, the course's test MSE against naive baselines, recall/NDCG@k."""
    model = build_model(cfg, data.catalog)
    t0 = time.perf_counter()
    fitted = fit(model, data.split.train, data.split.val, fit_config(cfg, progress), on_epoch=on_epoch,
                 duels=data.duels[:2] if data.duels is not None else None)
    metrics = {"training_seconds": time.perf_counter() - t0, "epochs": float(len(fitted.val_loss)),
               "best_epoch": float(fitted.best_epoch + 1), "best_val_loss": float(min(fitted.val_loss))}
    metrics.update(mse_report(model, data.split.train, data.split.test, seed=cfg.seed))
    metrics.update(ranking_report(model, data.split.test, relevant_time=cfg.relevant_time, seed=cfg.seed))
    return model, metrics


def train(cfg: TrainConfig, logs: list[str], world: str, register: str | None = tracking.MODEL_NAME,
          run_name: str | None = None, progress: bool = True) -> TrainResult:
    """The whole `train` entry point as a function (the experiment calls it in-process)."""
    import mlflow
    from mlflow.models import infer_signature

    set_threads()
    data = prepare(cfg, logs, world)
    catalog, events, sessions, pairs, split, digest, sources = (
        data.catalog, data.events, data.sessions, data.pairs, data.split, data.digest, data.sources)
    sizes = split.sizes()
    if data.duels is not None:
        sizes.update({f"duels_{k}": len(d) for k, d in zip(("train", "val", "test"), data.duels)})
    print(f"{len(events)} events, {sessions['session_id'].nunique()} sessions, {len(pairs)} pairs; "
          f"split {cfg.split}: {sizes}", flush=True)

    tracking.setup(EXPERIMENT)
    with tracking.step_run(run_name or "train", entry="train") as run:
        log_params({**dataclasses.asdict(cfg), "logs": ",".join(logs),
                           "world": str(world), "catalog_tracks": catalog.size,
                           "register": register or ""})
        mlflow.set_tags({"dataset_digest": digest, "botify.entry": "train"})
        log_dataset(events, digest, sources)
        mlflow.log_metrics({"events": len(events), "sessions": float(sessions["session_id"].nunique()),
                            "pairs": len(pairs), **{f"split_{k}": v for k, v in sizes.items()},
                            "tracks_seen_as_context": float(split.train["context"].nunique()),
                            "tracks_seen_as_target": float(split.train["target"].nunique())})

        def on_epoch(epoch: int, tr: float, va: float, secs: float) -> None:
            mlflow.log_metrics({"train_loss": tr, "val_loss": va, "epoch_seconds": secs}, step=epoch)

        model, metrics = fit_model(cfg, data, on_epoch, progress)
        mlflow.log_metrics(metrics)
        print(json.dumps({k: round(v, 5) for k, v in metrics.items()}), flush=True)

        ctx, tgt, bias = model.tables()
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "context.npy", ctx)
            np.save(Path(tmp) / "target.npy", tgt)
            np.save(Path(tmp) / "target_bias.npy", bias)
            mlflow.log_artifacts(tmp, artifact_path="embeddings")

        example = np.arange(min(3, catalog.size), dtype=np.int64)
        with torch.no_grad():
            out = model(torch.from_numpy(example)).numpy()
        with warnings.catch_warnings():
            # track ids are integers and never missing: MLflow's hint about integer columns that
            # cannot hold NaN does not apply, and printed on every run it buries the output
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            signature = infer_signature(example, out)
        # plain arrays + a JSON spec (training.learning.model), never a pickle
        version = tracking.log_model(model, name="model", register=register, signature=signature,
                                     metadata={"dataset_digest": digest, "n_tracks": catalog.size,
                                               "embedding_dim": cfg.embedding_dim})
        if register:
            client = mlflow.MlflowClient()
            client.set_registered_model_alias(register, tracking.CHALLENGER, version)
            client.set_model_version_tag(register, version, "run_id", run.info.run_id)
            client.set_model_version_tag(register, version, "dataset_digest", digest)
            print(f"registered {register} version {version} as @{tracking.CHALLENGER}", flush=True)
        return TrainResult(run.info.run_id, version, metrics, sizes)


def _none_if(v, *empty):
    return None if v in empty else v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", action="append", required=True,
                    help="event log file or folder, or runs:/<run_id>/<path>; repeat or comma-separate")
    ap.add_argument("--world", default="data/world", help="world folder (only public/ is read)")
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="training YAML (training/config/)")
    ap.add_argument("--embedding-dim", type=int, default=0, help="0: the config's")
    ap.add_argument("--split", default="", help="random | by_user | by_time ('': the config's)")
    ap.add_argument("--context", default="", help="first | previous ('': the config's)")
    ap.add_argument("--objective", default="", help="mse | bce ('': the config's)")
    ap.add_argument("--max-epochs", type=int, default=0, help="0: the config's")
    ap.add_argument("--seed", type=int, default=-1, help="-1: the config's")
    ap.add_argument("--register", default=tracking.MODEL_NAME, help="registered model name ('': don't)")
    ap.add_argument("--run-name", default=None)
    args = ap.parse_args(argv)
    logs = [p for item in args.log for p in item.split(",") if p]
    try:
        cfg = TrainConfig.from_yaml(
            args.config, embedding_dim=_none_if(args.embedding_dim, 0),
            split=_none_if(args.split, ""), context=_none_if(args.context, ""),
            objective=_none_if(args.objective, ""), max_epochs=_none_if(args.max_epochs, 0),
            seed=_none_if(args.seed, -1))
        res = train(cfg, logs, args.world, register=args.register or None, run_name=args.run_name)
    except (EventLogError, CatalogError, PairsError, FileNotFoundError, ValueError) as e:
        print(f"train: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"run_id": res.run_id, "version": res.version, "split": res.split_sizes}))
    return 0


if __name__ == "__main__":
    from training.jobs.lifecycle import run_entry_point
    sys.exit(run_entry_point("train", main))  # cancellable: see training/jobs/lifecycle.py
