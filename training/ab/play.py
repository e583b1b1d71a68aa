"""Play a day: serve a service config and let the simulator play it, over HTTP against
the real BentoML service or in-process through the same service logic.

The one path by which `collect`, the experiment (its days and the oracle's ceiling) and
the tests run the simulator: `training` never imports `sim`; it runs `python -m sim.run`
as a command, built by `SimCommand` from typed fields, so every caller passes the same
flags the same way and a failure reads the same everywhere.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from service import procs
from training.errors import JobError
from training.jobs.settings import REPO, repo_path

START_HINT = ("fix: if the port is taken, stop what listens there or let the job pick a free port "
              "(port=0, the default); otherwise the service's output above names the bad config or artifact")
SIM_HINT = ("if the simulator lost the connection, the service died or stopped answering: see the "
            "service's output; otherwise the simulator's own message above says what is wrong")


@dataclass(frozen=True)
class SimCommand:
    """`python -m sim.run` as docs/architecture.md specifies it, one field per flag."""

    config: Path
    episodes: int
    seed: int
    stats: Path
    recommender: str                  # dummy | oracle | remote | inprocess
    days: int = 1
    url: str | None = None            # remote
    factory: str | None = None        # inprocess: MODULE:FUNC
    factory_arg: str | None = None    # inprocess: its argument
    processes: int = 1                # > 1: `multi --processes P`

    def argv(self) -> list[str]:
        cmd = [sys.executable, "-m", "sim.run", "--config", str(repo_path(self.config)),
               "--episodes", str(self.episodes), "--seed", str(self.seed), "--days", str(self.days),
               "--stats", str(self.stats)]
        cmd += ["multi", "--processes", str(self.processes)] if self.processes > 1 else ["single"]
        cmd += ["--recommender", self.recommender]
        if self.url:
            cmd += ["--url", self.url]
        if self.factory:
            cmd += ["--factory", self.factory, "--factory-arg", str(self.factory_arg)]
        return cmd


def run_command(cmd: list[str], what: str, log: Path | None, hint: str) -> None:
    """Run a command to completion; fail with a message naming it, its tail and a hint.

    `log` None streams the output to ours (a person watching `collect`); a path keeps it in
    that file (a pipeline's day), and a failure quotes its last lines. The command dies
    with us (PR_SET_PDEATHSIG), even if we are SIGKILLed; on a cancel `subprocess.run`
    kills it before the exception leaves.
    """
    die_with_us = procs.child_preexec()
    if log is None:
        proc = subprocess.run(cmd, cwd=REPO, preexec_fn=die_with_us)
        tail = "(its output is above)"
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as fh:
            proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=die_with_us)
        tail = f"last output ({log}):\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    if proc.returncode != 0:
        raise JobError(f"{what} failed (exit {proc.returncode}): {hint}\ncommand: {' '.join(cmd)}\n{tail}")


def simulate(cmd: SimCommand, what: str, log: Path | None = None) -> pd.DataFrame:
    """Run the simulator; returns its per-episode stats (day, episode, user, steps, reward, time, truncated)."""
    cmd.stats.parent.mkdir(parents=True, exist_ok=True)
    run_command(cmd.argv(), what, log, SIM_HINT)
    df = pd.read_csv(cmd.stats)
    expected = cmd.episodes * cmd.days
    if len(df) != expected:
        raise JobError(f"{what}: the simulator wrote {len(df)} episodes to {cmd.stats}, expected {expected}")
    return df


def write_service_config(path: Path, *, catalog: Path, log_dir: Path, seed: int, recommenders: dict,
                         experiments: list[dict]) -> Path:
    """A service config for one day: this world's catalog, this day's log folder."""
    cfg = {"catalog": str(catalog), "seed": int(seed),
           "event_log": {"dir": str(log_dir), "max_bytes": 104857600, "backups": 10},
           "session_store": {"kind": "memory", "ttl_seconds": 1800},
           "recommenders": recommenders, "experiments": experiments}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def service_config_for(base: str | Path, catalog: Path, log_dir: Path, out: Path) -> Path:
    """A copy of an existing service config with this run's catalog and event log folder."""
    p = repo_path(base)
    if not p.exists():
        raise FileNotFoundError(f"service config {p} not found (e.g. service/config/cold_start.yml)")
    cfg = yaml.safe_load(p.read_text()) or {}
    cfg["catalog"] = str(catalog)
    cfg["event_log"] = {**(cfg.get("event_log") or {}), "dir": str(log_dir)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def play_day(service_config: Path, sim_config: str | Path, episodes: int, seed: int, day_dir: Path,
             in_process: bool, port: int = 0, *, days: int = 1, workers: int = 1,
             stream: bool = False) -> pd.DataFrame:
    """Serve `service_config` and let the simulator play `days` x `episodes` against it.

    Over HTTP the real BentoML service runs as a subprocess for exactly this day (the
    context manager stops it whatever happens); in-process the simulator drives the same
    service logic (`service.botify.load`) without HTTP. The stats go to
    `day_dir/episodes.csv`; the simulator's output to `day_dir/sim.log`, or to ours with
    `stream`.
    """
    from service.launch import ServiceProcess, ServiceStartError

    log = None if stream else day_dir / "sim.log"
    base = dict(config=Path(sim_config), episodes=episodes, seed=seed, stats=day_dir / "episodes.csv", days=days)
    if in_process:
        cmd = SimCommand(**base, recommender="inprocess", factory="service.botify:load",
                         factory_arg=str(service_config))
        return simulate(cmd, f"simulator ({day_dir.name})", log)
    try:
        with ServiceProcess(str(service_config), port=port or None, workers=workers) as svc:
            print(f"[{day_dir.name}] service ready at {svc.url}", flush=True)
            try:
                return simulate(SimCommand(**base, recommender="remote", url=svc.url),
                                f"simulator ({day_dir.name}) against {svc.url}", log)
            except JobError as e:
                raise JobError(f"{e}\nservice output:\n{svc.output(20)}") from None
    except ServiceStartError as e:
        raise JobError(f"the BentoML service did not start for {day_dir.name} ({service_config}): {e}\n"
                       f"{START_HINT}") from None


def oracle_day(sim_config: str | Path, episodes: int, seed: int, day_dir: Path) -> pd.DataFrame:
    """The simulator-only ceiling: the Oracle plays the same users and seed as a day."""
    cmd = SimCommand(config=Path(sim_config), episodes=episodes, seed=seed, stats=day_dir / "episodes.csv",
                     recommender="oracle")
    return simulate(cmd, "oracle run", day_dir / "sim.log")


def check_log(events: pd.DataFrame, stats: pd.DataFrame, where: Path) -> None:
    """The service must have logged exactly what the simulator played: no lost or extra line."""
    sessions = int((events["message"] == "last").sum())
    expected_events = int((stats["steps"] + 1).sum())
    if sessions != len(stats) or len(events) != expected_events:
        raise JobError(
            f"the event log in {where} is truncated or inconsistent: {len(events)} events and {sessions} "
            f"ended sessions, but the simulator played {len(stats)} episodes ({expected_events} requests). "
            "Was the service restarted mid-day, or its log rotated past `backups`? Run the day again.")


def user_level_means(stats: pd.DataFrame) -> dict[str, float]:
    """The simulator's episodes aggregated like the analysis does: per user, then over users."""
    per_user = stats.groupby("user").agg(time=("time", "mean"), rec=("reward", "mean"))
    return {"mean_time_per_session": float(per_user["time"].mean()),
            "mean_rec_time_per_session": float(per_user["rec"].mean())}


@dataclass(frozen=True)
class CalibrateCommand:
    """`python -m sim.calibrate` (the simulator's reference figures), one field per flag."""

    config: Path
    episodes: int
    seed: int
    json: Path
    max_steps: int | None = None      # only this session cap (None: the simulator's default caps)

    def argv(self) -> list[str]:
        cmd = [sys.executable, "-m", "sim.calibrate", "--config", str(repo_path(self.config)),
               "--episodes", str(self.episodes), "--seed", str(self.seed), "--json", str(self.json)]
        return cmd + (["--max-steps", str(self.max_steps)] if self.max_steps else [])


def calibrate(sim_config: str | Path, episodes: int, seed: int, out_dir: Path) -> Path:
    """The reference figures (Random, Oracle, anchor_catalog, anchor_ideal, ...) on this world
    and seed, computed by the simulator; returns the JSON's path. A figure outside the
    calibration's ranges (exit 1 with the JSON written) is reported there, not fatal: the
    references are still what this world gives."""
    from training.ab.simconfig import session_cap
    # the world's own cap only: the days are played with it (a second cap would double the cost)
    cmd = CalibrateCommand(Path(sim_config), episodes, seed, out_dir / "calibration.json",
                           max_steps=session_cap(repo_path(sim_config)))
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "calibrate.log"
    with open(log, "w") as fh:
        proc = subprocess.run(cmd.argv(), cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode not in (0, 1) or not cmd.json.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise JobError(f"the simulator's calibration failed (exit {proc.returncode}); command: "
                       f"{' '.join(cmd.argv())}\nlast output ({log}):\n{tail}")
    return cmd.json
