"""The simulator as a command: serve a config and let `python -m sim.run` play it (over HTTP
against the real BentoML service, or in-process through the same service logic), and
`python -m sim.calibrate` for the references.

training never imports `sim`: these commands are built here from typed fields, so every
caller passes the same flags the same way and a failure reads the same everywhere.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from service import procs
from training.errors import JobError
from training.paths import REPO, repo_path

START_HINT = ("fix: if the port is taken, stop what listens there or let the job pick a free port "
              "(port=0, the default); otherwise the service's output above names the bad config or artifact")
SIM_HINT = ("if the simulator lost the connection, the service died or stopped answering: see the "
            "service's output; otherwise the simulator's own message above says what is wrong")


def _day_flag(day: int) -> list[str]:
    """`--day D`, left out for day 1, the simulator's default."""
    return ["--day", str(day)] if day != 1 else []


@dataclass(frozen=True)
class SimCommand:
    """`python -m sim.run` as docs/architecture.md specifies it, one field per flag."""

    config: Path
    episodes: int
    seed: int
    stats: Path
    recommender: str                  # dummy | oracle | remote | inprocess
    days: int = 1
    day: int = 1                      # the simulator's number of the first day played
    url: str | None = None            # remote
    factory: str | None = None        # inprocess: MODULE:FUNC
    factory_arg: str | None = None    # inprocess: its argument
    processes: int = 1                # > 1: `multi --processes P`

    def argv(self) -> list[str]:
        cmd = [sys.executable, "-m", "sim.run", "--config", str(repo_path(self.config)),
               "--episodes", str(self.episodes), "--seed", str(self.seed), "--days", str(self.days),
               *_day_flag(self.day), "--stats", str(self.stats)]
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
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as fh:
            proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=die_with_us)
    if proc.returncode != 0:
        raise JobError(f"{what} failed (exit {proc.returncode}): {hint}\ncommand: {' '.join(cmd)}\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None:
        return "(its output is above)"
    return f"last output ({log}):\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])


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


def serve_and_play(service_config: Path, cmd: SimCommand, name: str, in_process: bool, port: int = 0, *,
                   workers: int = 1, log: Path | None = None) -> pd.DataFrame:
    """Serve `service_config` and let the simulator (`cmd`, its agent set here) play against it.

    Over HTTP the real BentoML service runs as a subprocess for exactly this day (the
    context manager stops it whatever happens); in-process the simulator drives the same
    service logic (`service.botify.load`) without HTTP.
    """
    from dataclasses import replace

    from service.launch import ServiceProcess, ServiceStartError

    if in_process:
        inproc = replace(cmd, recommender="inprocess", factory="service.botify:load", factory_arg=str(service_config))
        return simulate(inproc, f"simulator ({name})", log)
    try:
        with ServiceProcess(str(service_config), port=port or None, workers=workers) as svc:
            print(f"[{name}] service ready at {svc.url}", flush=True)
            try:
                return simulate(replace(cmd, recommender="remote", url=svc.url),
                                f"simulator ({name}) against {svc.url}", log)
            except JobError as e:
                raise JobError(f"{e}\nservice output:\n{svc.output(20)}") from None
    except ServiceStartError as e:
        raise JobError(f"the BentoML service did not start for {name} ({service_config}): {e}\n"
                       f"{START_HINT}") from None


def check_log(events: pd.DataFrame, stats: pd.DataFrame, where: Path) -> None:
    """The service must have logged exactly what the simulator played: no lost or extra line."""
    sessions = int((events["message"] == "last").sum())
    expected_events = int((stats["steps"] + 1).sum())
    if sessions != len(stats) or len(events) != expected_events:
        raise JobError(
            f"the event log in {where} is truncated or inconsistent: {len(events)} events and {sessions} "
            f"ended sessions, but the simulator played {len(stats)} episodes ({expected_events} requests). "
            "Was the service restarted mid-day, or its log rotated past `backups`? Run the day again.")


@dataclass(frozen=True)
class CalibrateCommand:
    """`python -m sim.calibrate` (the simulator's reference figures), one field per flag."""

    config: Path
    episodes: int
    seed: int
    json: Path
    day: int = 1
    max_steps: int | None = None      # only this session cap (None: the simulator's default caps)

    def argv(self) -> list[str]:
        cmd = [sys.executable, "-m", "sim.calibrate", "--config", str(repo_path(self.config)),
               "--episodes", str(self.episodes), "--seed", str(self.seed), *_day_flag(self.day),
               "--json", str(self.json)]
        return cmd + (["--max-steps", str(self.max_steps)] if self.max_steps else [])


class Calibration:
    """`sim.calibrate` (Random, Oracle, anchor_catalog, anchor_ideal, ... on one day's sessions)
    running in the background at a lower priority, so it takes the cores the job leaves idle
    (training runs on one thread) rather than the job's own; `wait` for its JSON, `stop` it.

    A figure outside the calibration's ranges (exit 1, the JSON written) is reported there,
    not fatal: the references are still what this world gives."""

    NICE = 10

    def __init__(self, sim_config: str | Path, episodes: int, seed: int, day: int, out_dir: Path) -> None:
        from training.ab.simconfig import session_cap
        # the world's own cap only: the days are played with it (a second cap would double the cost)
        self.cmd = CalibrateCommand(Path(sim_config), episodes, seed, out_dir / "calibration.json", day,
                                    max_steps=session_cap(repo_path(sim_config)))
        out_dir.mkdir(parents=True, exist_ok=True)
        self.log = out_dir / "calibrate.log"
        die_with_us = procs.child_preexec()

        def lower_priority() -> None:
            if die_with_us is not None:
                die_with_us()
            os.nice(self.NICE)

        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(self.cmd.argv(), cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                         preexec_fn=lower_priority)

    def wait(self) -> Path:
        code = self.proc.wait()
        if code not in (0, 1) or not self.cmd.json.is_file():
            raise JobError(f"the simulator's calibration failed (exit {code}); command: "
                           f"{' '.join(self.cmd.argv())}\n{_tail(self.log)}")
        return self.cmd.json

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
