"""Entry point `collect`: serve a data-collection config, let the simulator play it, keep the log.

The service config (default `service/config/cold_start.yml`: Random, StickyArtist and
TopPop arms, the course's cold start) is copied with two changes: the catalog is the
chosen world's public catalog and the event log goes into this run's own folder
(`logs/collect/<run id>/events`), so runs never mix their logs. The simulator plays over
HTTP against the real BentoML service (`service.launch.ServiceProcess`), or in-process
(`--in-process`, the same service logic without HTTP, for speed). The log becomes the
run's dataset: an MLflow dataset input with its sha256 and row count, and an artifact
(`runs:/<run id>/events`, which `train --log` accepts).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import yaml

from training.registry import tracking
from training.errors import JobError
from training.data.events import EventLogError, log_digest, read_events, sessionize
from training.ab.play import play_day, service_config_for
from training.ab.simconfig import REPO, world_dir

EXPERIMENT = "botify-collect"
DEFAULTS = REPO / "training" / "config" / "collect.yml"


def collect(sim_config: str, service_config: str, episodes: int, seed: int, days: int = 1,
            in_process: bool = False, workers: int = 1, out_root: str | Path = "logs/collect",
            run_name: str = "collect", stream: bool = True, rerun: str = "`mlflow run . -e collect`") -> dict:
    """Play `days` x `episodes` against the service and log the event log; returns a summary.

    `rerun` is the command that makes this log again, named if it is missing or empty
    afterwards (a pipeline's day is re-run by the pipeline, not by `-e collect`).

    Logs into a step run (`tracking.step_run`): the child of a pipeline's run, or a run of
    its own when called alone. `stream` shows the simulator's output as it plays.
    """
    import mlflow

    if episodes < 1 or days < 1:
        raise ValueError(f"episodes={episodes}, days={days}: both must be at least 1")
    catalog = world_dir(sim_config) / "public" / "tracks.json"
    if not catalog.exists():
        raise FileNotFoundError(f"no world at {catalog.parent.parent}: run `mlflow run . -e world` "
                                f"(or `python -m sim.world --config {sim_config}`) first")
    tracking.setup(EXPERIMENT)
    with tracking.step_run(run_name, entry="collect") as run:
        root = Path(out_root)
        root = (root if root.is_absolute() else REPO / root) / run.info.run_id
        log_dir = root / "events"
        log_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = service_config_for(service_config, catalog, log_dir, root / "service.yml")
        tracking.log_params({"sim_config": sim_config, "service_config": service_config,
                           "episodes": episodes, "seed": seed, "days": days,
                           "in_process": str(in_process).lower(), "workers": workers, "log_dir": str(log_dir)})
        t0 = time.perf_counter()
        st = play_day(cfg_path, sim_config, episodes, seed, root, in_process, days=days, workers=workers,
                      stream=stream)
        seconds = time.perf_counter() - t0
        stats = root / "episodes.csv"
        events = read_events(log_dir, remedy=f"its service wrote no log there; run it again: {rerun}")
        digest = log_digest(log_dir)
        sessions = sessionize(events)
        ds_df = events.assign(experiments=[json.dumps(e, sort_keys=True) for e in events["experiments"]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = mlflow.data.from_pandas(ds_df, source=str(log_dir), name="events", digest=digest[:16])
            mlflow.log_input(ds, context="collect")   # infers the schema: MLflow's integer-column hint
        mlflow.set_tag("dataset_digest", digest)
        metrics = {"events": len(events), "users": float(events["user"].nunique()),
                   "sessions": float(sessions["session_id"].nunique()),
                   "tracks_played": float(events["track"].nunique()), "seconds": seconds,
                   "episodes_played": float(len(st)), "mean_reward": float(st["reward"].mean()),
                   "mean_steps": float(st["steps"].mean())}
        mlflow.log_artifact(str(stats))
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(log_dir), artifact_path="events")
        mlflow.log_artifact(str(cfg_path))
        return {"run_id": run.info.run_id, "log": str(log_dir), "stats": str(stats),
                "artifact": f"runs:/{run.info.run_id}/events", "digest": digest, **metrics}


def main(argv: list[str] | None = None) -> int:
    d = yaml.safe_load(DEFAULTS.read_text())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim-config", default=d["sim_config"])
    ap.add_argument("--service-config", default=d["service_config"])
    ap.add_argument("--episodes", type=int, default=d["episodes"], help="episodes per day")
    ap.add_argument("--days", type=int, default=d["days"])
    ap.add_argument("--seed", type=int, default=d["seed"])
    ap.add_argument("--workers", type=int, default=d["workers"])
    ap.add_argument("--in-process", type=tracking.flag, nargs="?", const=True, default=False,
                    help="true: play through the in-process agent")
    ap.add_argument("--out", default="logs/collect", help="folder for the runs' logs")
    args = ap.parse_args(argv)
    try:
        summary = collect(args.sim_config, args.service_config, args.episodes, args.seed, args.days,
                          args.in_process, args.workers, args.out)
    except (FileNotFoundError, ValueError, JobError, EventLogError) as e:
        print(f"collect: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    from training.jobs.lifecycle import run_entry_point
    sys.exit(run_entry_point("collect", main))  # cancellable: see training/jobs/lifecycle.py
