"""Entry point `collect`: serve a data-collection config, let the simulator play it, keep the log.

The service config (default `service/config/cold_start.yml`: Random, StickyArtist and
TopPop arms, the course's cold start) is served with the chosen world's public catalog and
its event log in this run's own folder (`logs/collect/<run id>/logs`), so runs never mix
their logs. The simulator plays over HTTP against the real BentoML service, or in-process
(`--in-process`, the same service logic without HTTP). The log becomes the run's dataset:
an MLflow dataset input with its sha256 and row count, and an artifact
(`runs:/<run id>/events`, which `train --log` accepts).
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import yaml

from training.ab.day import DayLog, DaySpec, References, Service, play_day
from training.data.events import log_digest, sessionize
from training.jobs import lifecycle
from training.paths import REPO, repo_path
from training.registry import tracking
from training.runlog import log_params

EXPERIMENT = "botify-collect"
DEFAULTS = REPO / "training" / "config" / "collect.yml"


def collect(spec: DaySpec, run_name: str = "collect", references: References | None = None) -> tuple[DayLog, dict]:
    """Play the day and log its event log as a step run's dataset; returns the day and a summary.

    The run is a step run (`tracking.step_run`): the child of a job's run, or a run of its own
    when called alone. `spec.folder` is the parent of the run's own folder (named by its id).
    """
    import mlflow

    if spec.episodes < 1 or spec.days < 1:
        raise ValueError(f"episodes={spec.episodes}, days={spec.days}: both must be at least 1")
    tracking.setup(EXPERIMENT)
    with tracking.step_run(run_name, entry="collect") as run:
        spec = replace(spec, folder=Path(spec.folder) / run.info.run_id)
        log_params({"sim_config": spec.world, "episodes": spec.episodes, "seed": spec.seed, "days": spec.days,
                    "simulator_seed": spec.sim.seed, "simulator_day": spec.sim.day,
                    "in_process": str(spec.in_process).lower(), "workers": spec.workers,
                    "log_dir": str(spec.folder / "logs")})
        day = play_day(spec, references)
        digest = log_digest(day.logs)
        events = day.events
        ds_df = events.assign(experiments=[json.dumps(e, sort_keys=True) for e in events["experiments"]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = mlflow.data.from_pandas(ds_df, source=str(day.logs), name="events", digest=digest[:16])
            mlflow.log_input(ds, context="collect")   # infers the schema: MLflow's integer-column hint
        mlflow.set_tag("dataset_digest", digest)
        st = day.stats
        metrics = {"events": len(events), "users": float(events["user"].nunique()),
                   "sessions": float(sessionize(events)["session_id"].nunique()),
                   "tracks_played": float(events["track"].nunique()), "seconds": day.seconds["play"],
                   "episodes_played": float(len(st)), "mean_reward": float(st["reward"].mean()),
                   "mean_steps": float(st["steps"].mean())}
        mlflow.log_artifact(str(spec.folder / "episodes.csv"))
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(day.logs), artifact_path="events")
        mlflow.log_artifact(str(day.service_config))
        return day, {"run_id": run.info.run_id, "log": str(day.logs), "stats": str(spec.folder / "episodes.csv"),
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

    def work() -> None:
        spec = DaySpec("collect", repo_path(args.out), args.sim_config, args.seed, 1, args.episodes,
                       Service.from_config(args.service_config), in_process=args.in_process, workers=args.workers,
                       days=args.days, stream=True, rerun="`mlflow run . -e collect`")
        print(json.dumps(collect(spec)[1]))
    return lifecycle.one_line_failure("collect", work)


if __name__ == "__main__":
    sys.exit(lifecycle.run_entry_point("collect", main))  # cancellable: see training/jobs/lifecycle.py
