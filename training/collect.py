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
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import yaml

from training import tracking
from training.events import EventLogError, log_digest, read_events, sessionize
from training.simconfig import REPO, world_dir

EXPERIMENT = "botify-collect"
DEFAULTS = REPO / "training" / "config" / "collect.yml"


def service_config_for(base: str | Path, catalog: Path, log_dir: Path, out: Path) -> Path:
    """A copy of a service config with this run's catalog and event log folder."""
    p = Path(base)
    p = p if p.is_absolute() else REPO / p
    if not p.exists():
        raise FileNotFoundError(f"service config {p} not found (e.g. service/config/cold_start.yml)")
    cfg = yaml.safe_load(p.read_text()) or {}
    cfg["catalog"] = str(catalog)
    cfg["event_log"] = {**(cfg.get("event_log") or {}), "dir": str(log_dir)}
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def run_simulator(sim_config: str, episodes: int, seed: int, days: int, stats: Path,
                  agent: list[str]) -> None:
    cmd = [sys.executable, "-m", "sim.run", "--config", str(sim_config), "--episodes", str(episodes),
           "--seed", str(seed), "--days", str(days), "--stats", str(stats), "single", *agent]
    proc = subprocess.run(cmd, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"the simulator failed (code {proc.returncode}): `{' '.join(cmd[1:])}`; "
                           f"see its output above")


def collect(sim_config: str, service_config: str, episodes: int, seed: int, days: int = 1,
            in_process: bool = False, workers: int = 1, out_root: str | Path = "logs/collect") -> dict:
    """Play `days` x `episodes` against the service and log the event log; returns a summary."""
    import mlflow
    from service.launch import ServiceProcess

    if episodes < 1 or days < 1:
        raise ValueError(f"episodes={episodes}, days={days}: both must be at least 1")
    catalog = world_dir(sim_config) / "public" / "tracks.json"
    if not catalog.exists():
        raise FileNotFoundError(f"no world at {catalog.parent.parent}: run `mlflow run . -e world` "
                                f"(or `python -m sim.world --config {sim_config}`) first")
    tracking.setup(EXPERIMENT)
    with mlflow.start_run(run_name="collect") as run:
        root = Path(out_root)
        root = (root if root.is_absolute() else REPO / root) / run.info.run_id
        log_dir = root / "events"
        log_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = service_config_for(service_config, catalog, log_dir, root / "service.yml")
        stats = root / "stats.csv"
        mlflow.set_tag("botify.entry", "collect")
        tracking.log_params({"sim_config": sim_config, "service_config": service_config,
                           "episodes": episodes, "seed": seed, "days": days,
                           "in_process": str(in_process).lower(), "workers": workers, "log_dir": str(log_dir)})
        t0 = time.perf_counter()
        if in_process:
            run_simulator(sim_config, episodes, seed, days, stats,
                          ["--recommender", "inprocess", "--factory", "service.botify:load",
                           "--factory-arg", str(cfg_path)])
        else:
            with ServiceProcess(str(cfg_path), workers=workers) as svc:
                run_simulator(sim_config, episodes, seed, days, stats,
                              ["--recommender", "remote", "--url", svc.url])
        seconds = time.perf_counter() - t0
        events = read_events(log_dir)
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
                   "tracks_played": float(events["track"].nunique()), "seconds": seconds}
        if stats.exists():
            st = pd.read_csv(stats)
            metrics.update({"episodes_played": float(len(st)), "mean_reward": float(st["reward"].mean()),
                            "mean_steps": float(st["steps"].mean())})
            mlflow.log_artifact(str(stats))
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(log_dir), artifact_path="events")
        mlflow.log_artifact(str(cfg_path))
        return {"run_id": run.info.run_id, "log": str(log_dir), "artifact": f"runs:/{run.info.run_id}/events",
                "digest": digest, **metrics}


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
    except (FileNotFoundError, ValueError, RuntimeError, EventLogError) as e:
        print(f"collect: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
