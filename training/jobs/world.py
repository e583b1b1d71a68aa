"""Entry point `world`: generate the simulator's world if it is missing (seeded).

Runs `python -m sim.world --config CONFIG` as a command (training never imports sim);
the generator itself skips a world that is up to date. Logs the public world.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from service import procs
from training.registry import tracking
from training.runlog import log_params, mark_model_training
from training.ab.simconfig import REPO, world_dir


def ensure_world(sim_config: str, force: bool = False) -> dict:
    """Make sure the world exists; returns its public world.json."""
    cmd = [sys.executable, "-m", "sim.world", "--config", str(sim_config)] + (["--force"] if force else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, preexec_fn=procs.child_preexec())  # dies with us
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd[1:])}` failed with code {proc.returncode}; see its output above")
    meta = world_dir(sim_config) / "public" / "world.json"
    if not meta.exists():
        raise RuntimeError(f"the world generator ran but {meta} is missing: check {sim_config}")
    info = json.loads(meta.read_text())
    info["_seconds"] = time.perf_counter() - t0
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="sim/config/env.yml", help="simulator YAML config")
    ap.add_argument("--force", action="store_true", help="regenerate even if up to date")
    args = ap.parse_args(argv)
    import mlflow
    tracking.setup("botify-world")
    with mlflow.start_run(run_name="world") as run:
        mark_model_training(run.info.experiment_id)
        try:
            info = ensure_world(args.config, args.force)
        except (RuntimeError, FileNotFoundError) as e:
            print(f"world: {e}", file=sys.stderr)
            return 2
        seconds = info.pop("_seconds")
        mlflow.set_tag("botify.entry", "world")
        log_params({"config": args.config, "world_dir": str(world_dir(args.config)),
                           **{k: info[k] for k in ("name", "seed", "tracks", "users") if k in info}})
        mlflow.log_metric("seconds", seconds)
        mlflow.log_dict(info, "world.json")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    from training.jobs.lifecycle import run_entry_point
    sys.exit(run_entry_point("world", main))  # cancellable: see training/jobs/lifecycle.py
