"""Checks that a world behaves like the course's: plays the course's reference
recommenders and the Oracle on the same seeded sessions and compares them with the
ranges of issue 2. Exits non-zero when a figure is out of range.

    python -m sim.calibrate --config sim/config/env.yml --episodes 5000 --seed 424242

Also prints, for information (not checked), session-anchored and contextual
references that bound what the service's SessionAware and Contextual can reach, with
each one's share of the headroom between Random and the Oracle, the product's headline.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sim.agents import DummyAgent, OracleAgent
from sim.baselines import (ContextualIdeal, SessionAnchorCatalog, SessionAnchorIdeal,
                           StickyArtist, TopPop)
from sim.config import ConfigError, load_config
from sim.envs.listener import ListenerEnv
from sim.run import blocks, play_block
from sim.world import World, WorldError


@dataclass(frozen=True)
class Check:
    """A figure's allowed range, relative to Random's mean reward (or absolute)."""
    low: float
    high: float
    relative: bool

    def describe(self) -> str:
        if not self.relative:
            return f"{self.low:g}..{self.high:g}"
        hi = "" if math.isinf(self.high) else f"{self.high:+.0%}"
        return f"{self.low:+.0%}..{hi} vs Random" if hi else f">= {1 + self.low:g}x Random"


# issue 2: Random 0.7-1.5; StickyArtist +30%..+110%; TopPop-100 within ±15%; Oracle >= 4x
CHECKS: dict[str, Check] = {
    "Random": Check(0.7, 1.5, relative=False),
    "StickyArtist": Check(0.30, 1.10, relative=True),
    "TopPop-100": Check(-0.15, 0.15, relative=True),
    "Oracle (upper bound)": Check(3.0, math.inf, relative=True),
}


def agents(env: ListenerEnv, world: World, top: int) -> dict[str, Callable[[], Any]]:
    return {
        "Random": lambda: DummyAgent(world.n_tracks),
        "StickyArtist": lambda: StickyArtist(world),
        f"TopPop-{top}": lambda: TopPop(world, top),
        "Oracle (upper bound)": lambda: OracleAgent(env),
        "SessionAnchor, catalog only (info)": lambda: SessionAnchorCatalog(world),
        "SessionAnchor, ideal i2i (info)": lambda: SessionAnchorIdeal(world),
        "Contextual, ideal i2i (info)": lambda: ContextualIdeal(world),
    }


def evaluate(figures: dict[str, dict], checks: dict[str, Check] = CHECKS) -> list[str]:
    """The failed checks, as messages (empty when every figure is in range)."""
    failures = []
    base = figures["Random"]["reward"]
    for name, check in checks.items():
        if name not in figures:
            continue
        value = figures[name]["reward"]
        x = value / base - 1.0 if check.relative else value
        if not check.low <= x <= check.high:
            shown = f"{x:+.1%} vs Random" if check.relative else f"{x:.3f}"
            failures.append(f"{name}: {shown}, expected {check.describe()}")
    return failures


def measure(env: ListenerEnv, agent: Any, episodes: int, seed: int) -> dict[str, float]:
    rows = []
    for b, start, n in blocks(episodes):
        rows.extend(play_block(env, agent, seed, 1, b, start, n))
    reward = np.array([r[4] for r in rows])
    by_user: dict[int, list[float]] = {}
    for r in rows:
        by_user.setdefault(r[2], []).append(r[5])
    return {"reward": float(reward.mean()), "reward_se": float(reward.std(ddof=1) / math.sqrt(len(rows))),
            "steps": float(np.mean([r[3] for r in rows])),
            "truncated": float(np.mean([r[6] for r in rows])),
            "time_per_session": float(np.mean([np.mean(v) for v in by_user.values()]))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="sim/config/env.yml")
    p.add_argument("--episodes", type=int, default=5000)
    p.add_argument("--seed", type=int, default=424242)
    p.add_argument("--top", type=int, default=100, help="TopPop's list size (default 100)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.episodes < 2:
        print("error: --episodes must be >= 2", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        world = World.from_config(cfg)
    except (ConfigError, WorldError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    env = ListenerEnv(world, cfg.session)
    checks = dict(CHECKS)
    if args.top != 100:
        checks[f"TopPop-{args.top}"] = checks.pop("TopPop-100")
    figures: dict[str, dict] = {}
    print(f"world {cfg.world.name!r} ({world.n_tracks} tracks, {world.n_users} users), "
          f"{args.episodes} episodes per agent, seed {args.seed}, max_steps {cfg.session.max_steps}")
    print(f"{'agent':38} {'reward/episode':>17} {'vs Random':>10} {'headroom':>9} "
          f"{'time/session':>12} {'steps':>6} {'trunc':>6}  check")
    for name, make in agents(env, world, args.top).items():
        figures[name] = measure(env, make(), args.episodes, args.seed)
    base = figures["Random"]
    oracle = figures["Oracle (upper bound)"]
    failed = evaluate(figures, checks)
    for name, f in figures.items():
        head = (f["time_per_session"] - base["time_per_session"]) / \
            (oracle["time_per_session"] - base["time_per_session"])
        f["headroom_share"] = head
        check = checks.get(name)
        verdict = "" if check is None else (
            ("FAIL " if any(m.startswith(name + ":") for m in failed) else "ok   ") + check.describe())
        print(f"{name:38} {f['reward']:8.3f} ± {f['reward_se']:6.3f} {f['reward'] / base['reward'] - 1:+10.1%} "
              f"{head:9.2f} {f['time_per_session']:12.3f} {f['steps']:6.2f} {f['truncated']:6.1%}  {verdict}")
    print("headroom = (time/session - Random's) / (Oracle's - Random's), time/session averaged per user "
          "as the A/B analysis does")
    if args.json:
        args.json.write_text(json.dumps({"config": str(cfg.path), "episodes": args.episodes,
                                         "seed": args.seed, "figures": figures,
                                         "failures": failed}, indent=2) + "\n")
    if failed:
        print("OUT OF RANGE:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    print("all calibration figures in range")
    return 0


if __name__ == "__main__":
    sys.exit(main())
