"""One day of a job, the same for `collect`, the experiment and the loop: the day's service
config, the simulator's run of the day's sessions, the service's log read and checked
against what was played, and the simulator's references on the same sessions.

The seed rule lives here alone (`simulator_day`): whatever job plays it, a job's n-th day
is one fixed set of sessions of the simulator, so two jobs (or a job and `sim.calibrate`)
meet the same listeners on the same day.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from training.ab.play import Calibration, SimCommand, check_log, serve_and_play, write_service_config
from training.ab.references import Reference, ReferencesError, load_references
from training.ab.simconfig import world_dir
from training.data.events import read_events
from training.errors import JobError
from training.paths import repo_path
from training.yamlfile import read_mapping


@dataclass(frozen=True)
class SimDay:
    """What the simulator is told to play: `--seed seed --day day`."""

    seed: int
    day: int

    def __str__(self) -> str:
        return f"--seed {self.seed} --day {self.day}"


def simulator_day(seed: int, nth: int) -> SimDay:
    """The seed rule of every job: its n-th day (1: the first day it plays) is the simulator's
    day n of the job's seed, the sessions `python -m sim.run --seed S --days n` plays on its
    last day; every recommender and reference meets the same listeners there."""
    return SimDay(seed, nth)


@dataclass(frozen=True)
class Service:
    """What the service serves on a day: its recommenders, its experiments (arms) and its seed."""

    recommenders: dict
    experiments: list[dict]
    seed: int = 42

    @classmethod
    def from_config(cls, path: str | Path) -> "Service":
        """The recommenders and experiments of a service config (e.g. service/config/cold_start.yml)."""
        cfg = read_mapping(repo_path(path), "service config", "e.g. service/config/cold_start.yml")
        return cls(dict(cfg.get("recommenders") or {}), list(cfg.get("experiments") or []), int(cfg.get("seed", 42)))


@dataclass(frozen=True)
class DaySpec:
    """One day to play: where its files go, which sessions, what the service serves."""

    name: str                          # how messages name it ("day 2")
    folder: Path                       # service.yml, logs/, episodes.csv, sim.log, references/
    world: str                         # the simulator's config
    seed: int                          # the job's seed
    nth: int                           # the job's n-th day (1: its first): the seed rule's input
    episodes: int
    service: Service
    in_process: bool = False
    port: int = 0                      # 0: a free one
    workers: int = 1
    days: int = 1                      # consecutive days in one run (collect's `--days`)
    references: int = 0                # episodes of the day's first sessions the references play (0: none)
    stream: bool = False               # the simulator's output to ours instead of sim.log
    rerun: str = ""                    # the command that plays this day again, for error messages

    @property
    def sim(self) -> SimDay:
        return simulator_day(self.seed, self.nth)


@dataclass
class DayLog:
    """A played day: what was served, what the simulator played, what the service logged."""

    spec: DaySpec
    service_config: Path
    logs: Path
    stats: pd.DataFrame                # the simulator's rows, one per episode
    events: pd.DataFrame               # the service's log, read and checked against `stats`
    references: dict[str, Reference] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)   # play, references (waited for)


class References:
    """The simulator's references on a day's first sessions, started now in a process of their
    own and read when needed: a job starts a day's references beside whatever it does before
    it needs them (the day's play, the previous day's training)."""

    def __init__(self, world: str, sim: SimDay, episodes: int, folder: Path, name: str) -> None:
        self.name, self.sim, self.episodes = name, sim, episodes
        self._run = Calibration(world, episodes, sim.seed, sim.day, folder / "references")
        self._figures: dict[str, Reference] | None = None

    @classmethod
    def of(cls, spec: "DaySpec") -> "References":
        """The references `spec` asks for: its first `spec.references` sessions."""
        return cls(spec.world, spec.sim, min(spec.references, spec.episodes), spec.folder, spec.name)

    def figures(self) -> dict[str, Reference]:
        """The figures, waiting for the simulator if it is still playing."""
        if self._figures is None:
            try:
                self._figures = load_references(self._run.wait())
            except ReferencesError as e:
                raise JobError(f"{self.name}: {e}") from None
        return self._figures

    def stop(self) -> None:
        self._run.stop()


def play_day(spec: DaySpec, references: References | None = None) -> DayLog:
    """Serve the day's config, play its sessions, read and check its log.

    The day's references (`spec.references` episodes) play the same day's first sessions in a
    process of their own beside the play; `references` hands in ones started earlier."""
    catalog = world_dir(repo_path(spec.world)) / "public" / "tracks.json"
    if not catalog.exists():
        raise FileNotFoundError(f"no world at {catalog.parent.parent}: run `mlflow run . -e world` "
                                f"(or `python -m sim.world --config {spec.world}`) first")
    logs = spec.folder / "logs"
    svc = write_service_config(spec.folder / "service.yml", catalog=catalog, log_dir=logs, seed=spec.service.seed,
                               recommenders=spec.service.recommenders, experiments=spec.service.experiments)
    sim = spec.sim
    cmd = SimCommand(config=Path(spec.world), episodes=spec.episodes, seed=sim.seed, day=sim.day, days=spec.days,
                     stats=spec.folder / "episodes.csv", recommender="remote")
    refs = references or (References.of(spec) if spec.references else None)
    t0 = time.perf_counter()
    try:
        try:
            stats = serve_and_play(svc, cmd, spec.name, spec.in_process, spec.port, workers=spec.workers,
                                   log=None if spec.stream else spec.folder / "sim.log")
        except JobError as e:
            raise JobError(f"{spec.name} failed: {e}") from None
        remedy = f"{spec.name}'s service wrote it there; was it deleted while the job ran? " + (
            f"run it again: {spec.rerun}" if spec.rerun else "run the job again")
        events = read_events(logs, remedy=remedy)
        check_log(events, stats, logs)
        played = time.perf_counter() - t0
        figures = refs.figures() if refs is not None else {}
    finally:
        if refs is not None:
            refs.stop()
    return DayLog(spec, svc, logs, stats, events, figures,
                  {"play": played, "references_wait": time.perf_counter() - t0 - played})
