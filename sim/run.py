"""The simulator's runner: plays days of listening sessions against an agent and
reports each day (docs/architecture.md, "The simulator's command line").

    python -m sim.run --episodes 2500 --config sim/config/env.yml single --recommender remote --seed 424242
    python -m sim.run --episodes 2500 --config sim/config/env.yml --days 2 --stats stats.csv \\
        multi --processes 2 --recommender dummy

Every session has random streams of its own, named by (seed, day, episode)
(``sim.seeds``): who starts on which track, the listener's responses and a random
agent's choices. So any two recommenders run on the same seed meet the same users on the
same first tracks in every session, and ``--day D`` plays the sessions of the last day of
``--days D``. ``single`` and ``multi`` with any number of processes give the same rows for
agents without cross-session state (dummy, oracle, in-process lists); a stateful service
adds its own order-dependence in ``multi``. Episodes go to processes in blocks of ``BLOCK``.

In ``multi`` two processes may, rarely, play sessions of the same user at the same time
(users are drawn uniformly; with 10,000 users and 2 processes, well under one overlap a
day); a service that keys session state by user sees them interleaved. ``single`` never
overlaps sessions: use it when that matters (an A/B test of session-aware recommenders).
"""
from __future__ import annotations

import argparse
import csv
import math
import multiprocessing as mp
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
from tqdm import tqdm

from sim.agents import AGENTS, AgentError, ServiceUnavailableError, make_agent
from sim.config import ConfigError, SimConfig, load_config
from sim.envs.listener import ListenerEnv, UnknownTrackError
from sim.seeds import AGENT, LISTENER, SessionStreams
from sim.world import World, WorldError

BLOCK = 50


class Session(NamedTuple):
    """One played session: a row of the stats file. ``steps`` counts recommended tracks,
    ``reward`` sums their times and ``time`` adds the first track's 1.0."""
    day: int
    episode: int
    user: int
    first_track: int
    steps: int
    reward: float
    time: float
    truncated: int


STATS_HEADER = Session._fields


@dataclass(frozen=True)
class AgentSpec:
    """What a process needs to build its own agent (picklable, for ``multi``)."""
    name: str
    url: str | None
    connect_timeout: float
    read_timeout: float
    factory: str | None
    factory_args: tuple[str, ...]


class Player:
    """One process's environment and agent; plays blocks of episodes."""

    def __init__(self, cfg: SimConfig, world: World, spec: AgentSpec):
        self.env = ListenerEnv(world, cfg.session)
        self.agent = make_agent(spec.name, env=self.env, world=world, seed=None, url=spec.url,
                                connect_timeout=spec.connect_timeout, read_timeout=spec.read_timeout,
                                factory=spec.factory, factory_args=list(spec.factory_args))

    def close(self) -> None:
        close = getattr(self.agent, "close", None)
        if close is not None:
            close()

    def play(self, seed: int, day: int, first_episode: int, n: int) -> list[Session]:
        return play_sessions(self.env, self.agent, seed, day, first_episode, n)


def play_sessions(env: ListenerEnv, agent: Any, seed: int, day: int, first_episode: int,
                  n: int) -> list[Session]:
    """Play episodes ``first_episode .. first_episode + n - 1`` of ``day``, each on its own
    streams (``sim.seeds``); rows of the stats file. The hot loop of every run, so it binds
    methods to locals and allocates nothing per step."""
    reseed = getattr(agent, "reseed", None)
    listener = SessionStreams(seed, day, LISTENER)
    agent_streams = SessionStreams(seed, day, AGENT) if reseed is not None else None
    recommend, end, step, reset = agent.recommend_next, agent.end_session, env.step, env.reset
    rows = []
    for episode in range(first_episode, first_episode + n):
        if reseed is not None:
            reseed(agent_streams.at(episode))
        env.np_random = listener.at(episode)
        obs, _ = reset()
        user, track, t = obs["user"], obs["prev_track"], 1.0
        first, reward, steps = track, 0.0, 0
        while True:
            track = recommend(user, track, t)
            _, t, terminated, truncated, _ = step(track)
            reward += t
            steps += 1
            if terminated or truncated:
                break
        end(user, track, t)
        reward = round(reward, 2)
        rows.append(Session(day, episode, user, first, steps, reward, round(1.0 + reward, 2), int(truncated)))
    return rows


def blocks(episodes: int) -> list[tuple[int, int]]:
    """(first episode, size) of the blocks covering a day's episodes (one task each)."""
    return [(start, min(BLOCK, episodes - start)) for start in range(0, episodes, BLOCK)]


# ---- multi: worker processes, each with its own environment and agent -------------------
_WORKER: dict[str, Any] = {}


def _worker_init(cfg_path: str, spec: AgentSpec) -> None:
    # An initializer that raises makes the pool respawn workers forever: keep the error
    # and raise it from the first task instead, so it reaches the parent.
    try:
        cfg = load_config(cfg_path)
        world = _WORKER.get("world") or World.from_config(cfg)   # inherited when forked
        _WORKER["player"] = Player(cfg, world, spec)
    except Exception as e:   # noqa: BLE001 - re-raised in _worker_play
        _WORKER["error"] = e


def _worker_play(task: tuple) -> list[Session]:
    if "error" in _WORKER:
        raise _WORKER["error"]
    return _WORKER["player"].play(*task)


def summarize(rows: Sequence[Session]) -> dict[str, float]:
    """Mean and standard error of reward and steps per episode (the course's summary)."""
    reward = np.array([r.reward for r in rows], dtype=float)
    steps = np.array([r.steps for r in rows], dtype=float)
    n = len(rows)
    se = (lambda x: float(x.std(ddof=1) / math.sqrt(n))) if n > 1 else (lambda x: float("nan"))
    return {"episodes": n, "reward": float(reward.mean()), "reward_se": se(reward),
            "steps": float(steps.mean()), "steps_se": se(steps),
            "truncated": float(np.mean([r.truncated for r in rows]))}


def format_summary(day: int, s: dict[str, float], seconds: float) -> str:
    total_steps = s["steps"] * s["episodes"]
    return (f"day {day}: {s['episodes']} episodes | reward {s['reward']:.3f} ± {s['reward_se']:.3f} | "
            f"steps {s['steps']:.2f} ± {s['steps_se']:.2f} | truncated {s['truncated']:.1%} | "
            f"{total_steps / max(seconds, 1e-9):,.0f} steps/s")


def run_days(cfg: SimConfig, spec: AgentSpec, *, episodes: int, seed: int, days: int | None,
             processes: int | None, stats: Path | None, prompt: bool,
             out=None, progress: bool = True, first_day: int = 1) -> list[Session]:
    """Play ``days`` days from day ``first_day`` (``None``: until the prompt says no);
    returns every row. ``processes=None`` is ``single``."""
    out = out or sys.stdout
    world = World.from_config(cfg)
    all_rows: list[Session] = []
    writer = None
    stats_file = None
    pool = None
    closers: list = []
    try:
        if stats is not None:
            stats.parent.mkdir(parents=True, exist_ok=True)
            stats_file = stats.open("w", newline="")
            writer = csv.writer(stats_file)
            writer.writerow(STATS_HEADER)
        if processes is None:
            player = Player(cfg, world, spec)
            closers.append(player.close)
        else:
            _WORKER["world"] = world
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = ctx.Pool(processes, initializer=_worker_init, initargs=(str(cfg.path), spec))
        day = first_day
        while True:
            started = time.perf_counter()
            tasks = [(seed, day, start, n) for start, n in blocks(episodes)]
            rows: list[Session] = []
            with tqdm(total=episodes, desc=f"day {day}", unit="ep", file=sys.stderr,
                      dynamic_ncols=True, leave=False, disable=not progress) as bar:
                results: Iterator[list[Session]] = (pool.imap(_worker_play, tasks) if pool is not None
                                                    else (player.play(*t) for t in tasks))
                for block_rows in results:
                    rows.extend(block_rows)
                    bar.update(len(block_rows))
            elapsed = time.perf_counter() - started
            print(format_summary(day, summarize(rows), elapsed), file=out, flush=True)
            if writer is not None:
                writer.writerows(rows)
                stats_file.flush()
            all_rows.extend(rows)
            if days is not None and day >= first_day + days - 1:
                break
            if prompt:
                print("start a new day? [y/N] ", end="", file=out, flush=True)
                answer = sys.stdin.readline().strip().lower()
                if answer not in ("y", "yes"):
                    break
            day += 1
    finally:
        for close in closers:
            close()
        if pool is not None:
            pool.terminate()
            pool.join()
        _WORKER.pop("world", None)
        if stats_file is not None:
            stats_file.close()
    return all_rows


def _common(p: argparse.ArgumentParser, suppress: bool) -> None:
    """Options accepted before and after the mode (the seed's command puts --seed after
    ``single``); after the mode they default to "not given" so they never override."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument("--config", default=d("sim/config/env.yml"), help="simulator YAML config")
    p.add_argument("--episodes", type=int, default=d(2500), help="episodes per day (default 2500)")
    p.add_argument("--seed", type=int, default=d(0), help="seed of the sessions (default 0)")
    p.add_argument("--days", type=int, default=d(None),
                   help="days to play without asking (default 1, or until you say no with --prompt)")
    p.add_argument("--day", type=int, default=d(1),
                   help="number of the first day played (default 1): --day D plays the sessions "
                        "the last day of --days D plays")
    p.add_argument("--stats", type=Path, default=d(None),
                   help="write one CSV row per episode: " + ",".join(STATS_HEADER))
    p.add_argument("--prompt", action="store_true", default=d(False),
                   help='ask "start a new day?" after each day')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim.run", description=(
        "Play days of simulated listening sessions against a recommender and print each day's "
        "mean ± standard error of reward and steps per episode."))
    _common(p, suppress=False)
    sub = p.add_subparsers(dest="mode", required=True, metavar="{single,multi}")
    for mode, help_ in (("single", "play in this process"),
                        ("multi", "split each day's episodes across processes")):
        s = sub.add_parser(mode, help=help_)
        if mode == "multi":
            s.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
        s.add_argument("--recommender", required=True, help="one of " + ", ".join(AGENTS))
        s.add_argument("--url", default=None, help="service URL for remote (default: remote.url of the config)")
        s.add_argument("--factory", default=None,
                       help="inprocess: module:function that builds the recommender (e.g. service.botify:load)")
        s.add_argument("--factory-arg", action="append", default=[], dest="factory_args",
                       help="argument passed to the factory (repeatable)")
        _common(s, suppress=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problems = []
    if args.episodes < 1:
        problems.append(f"--episodes must be >= 1 (got {args.episodes})")
    if args.days is not None and args.days < 1:
        problems.append(f"--days must be >= 1 (got {args.days})")
    if args.day < 1:
        problems.append(f"--day must be >= 1 (got {args.day}): days count from 1")
    if args.seed < 0:
        problems.append(f"--seed must be >= 0 (got {args.seed})")
    if args.mode == "multi" and args.processes < 1:
        problems.append(f"--processes must be >= 1 (got {args.processes})")
    if args.recommender not in AGENTS:
        problems.append(f"unknown recommender {args.recommender!r}: choose one of {', '.join(AGENTS)}")
    if args.mode == "multi" and args.recommender == "console":
        problems.append("the console agent needs a person at one terminal: use `single`")
    if problems:
        for msg in problems:
            print(f"error: {msg}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        spec = AgentSpec(args.recommender, args.url or cfg.remote.url, cfg.remote.connect_timeout,
                         cfg.remote.read_timeout, args.factory, tuple(args.factory_args))
        days = args.days if args.days is not None else (None if args.prompt else 1)
        run_days(cfg, spec, episodes=args.episodes, seed=args.seed, days=days,
                 processes=args.processes if args.mode == "multi" else None,
                 stats=args.stats, prompt=args.prompt, first_day=args.day)
    except (ConfigError, WorldError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ServiceUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except AgentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except UnknownTrackError as e:
        print(f"error: the {args.recommender} recommender answered a bad track: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
