"""The judge: plays recommenders on the same sessions and compares them session by session.

Every session's start and listener responses are named by (seed, day, episode)
(``sim.seeds``), so any two recommenders judged on the same seed, day and episodes meet
the same users on the same first tracks and the same response draws: their difference is
paired, and its standard error is that of the per-session differences, below (for close
recommenders far below) what two independent samples give. A recommender comes in as an agent (``sim.agents``: an
in-process one through its factory), never as the service's or training's code.

    rows_a = judge(env, agent_a, episodes=1000, seed=424242)
    rows_b = judge(env, agent_b, episodes=1000, seed=424242)
    paired(rows_a, rows_b, random=refs["random"], oracle=refs["oracle"])
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sim.envs.listener import ListenerEnv
from sim.run import STATS_HEADER, Session, play_sessions


class JudgeError(ValueError):
    """Two sets of rows that are not the same sessions, or a sessions file that is not one."""


def judge(env: ListenerEnv, agent: Any, episodes: int, seed: int, day: int = 1) -> list[Session]:
    """The agent on episodes 0..episodes-1 of ``day`` of ``seed``: the sessions
    ``python -m sim.run --episodes N --seed S --day D`` plays. One row per session."""
    return play_sessions(env, agent, seed, day, 0, episodes)


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def per_user(rows: Sequence[Session], values: np.ndarray | None = None) -> np.ndarray:
    """Each user's mean of ``values`` (default: time per session) over their sessions,
    ordered by user id: the A/B analysis's unit."""
    users = np.fromiter((r.user for r in rows), dtype=np.int64, count=len(rows))
    x = np.fromiter((r.time for r in rows), dtype=float, count=len(rows)) if values is None else values
    _, inverse = np.unique(users, return_inverse=True)
    return np.bincount(inverse, weights=x) / np.bincount(inverse)


def figures(rows: Sequence[Session]) -> dict[str, float]:
    """Reward and steps per session; ``time_per_session`` averaged per user, then over
    users, as the A/B analysis does, with its standard error over users."""
    reward = np.array([r.reward for r in rows])
    users = per_user(rows)
    return {"reward": float(reward.mean()), "reward_se": _se(reward),
            "steps": float(np.mean([r.steps for r in rows])),
            "truncated": float(np.mean([r.truncated for r in rows])),
            "time_per_session": float(users.mean()), "time_per_session_se": _se(users),
            "sessions": len(rows), "users": len(users)}


def same_sessions(a: Sequence[Session], b: Sequence[Session]) -> None:
    """Raise unless ``a`` and ``b`` are rows of the same sessions, in the same order."""
    key = lambda r: (r.day, r.episode, r.user, r.first_track)
    if len(a) != len(b) or any(key(x) != key(y) for x, y in zip(a, b)):
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if key(x) != key(y)), min(len(a), len(b)))
        raise JudgeError(f"not the same sessions ({len(a)} and {len(b)} rows, first difference at row {first}): "
                         f"judge both on the same seed, day and episodes")


def paired(a: Sequence[Session], b: Sequence[Session], random: float | None = None,
           oracle: float | None = None) -> dict[str, float]:
    """``b`` minus ``a`` on the same sessions.

    ``time_diff`` is the mean over sessions of the difference in time per session, with
    ``time_diff_se`` the standard error of those per-session differences. ``user_diff``
    averages the differences per user first, then over users (so it equals the difference
    of the two ``time_per_session`` figures), with ``user_diff_se`` over users' mean
    differences: the unit of the A/B analysis, robust to a user's sessions being alike.
    Given Random's and the Oracle's ``time_per_session`` on the same sessions,
    ``headroom_diff`` is ``user_diff`` as a share of the Random->Oracle headroom (the
    difference of the two ``headroom_share`` figures) and ``headroom_diff_se`` its
    standard error (the references' own noise left out).
    """
    same_sessions(a, b)
    d = np.array([y.time - x.time for x, y in zip(a, b)])
    by_user = per_user(a, d)
    out = {"sessions": len(d), "users": len(by_user), "time_diff": float(d.mean()), "time_diff_se": _se(d),
           "user_diff": float(by_user.mean()), "user_diff_se": _se(by_user)}
    if random is not None and oracle is not None:
        gap = oracle - random
        out["headroom_diff"] = out["user_diff"] / gap if gap > 0 else float("nan")
        out["headroom_diff_se"] = out["user_diff_se"] / gap if gap > 0 else float("nan")
    return out


def write_stats(path: Path, rows: Sequence[Session]) -> None:
    """Rows as the runner's stats file (``--stats``), so any two can be paired."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(STATS_HEADER)
        w.writerows(rows)


def read_stats(path: Path) -> list[Session]:
    """A stats file's rows (``python -m sim.run --stats`` or ``sim.calibrate --sessions``)."""
    with Path(path).open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(header) != STATS_HEADER:
            raise JudgeError(f"{path} is not a simulator stats file (header {header}, expected "
                             f"{','.join(STATS_HEADER)}): write it with `python -m sim.run --stats` "
                             f"or `python -m sim.calibrate --sessions`")
        kinds = [int if t == "int" else float for t in Session.__annotations__.values()]
        return [Session(*(k(c) for k, c in zip(kinds, cells))) for cells in reader]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.judge", description=(
        "Pair two stats files of the same sessions (same seed, day and episodes) and print B minus A: "
        "the mean difference of time per session and its paired standard error, per session and per user."))
    p.add_argument("a", type=Path, help="stats file of the reference (A)")
    p.add_argument("b", type=Path, help="stats file of the recommender judged against it (B)")
    p.add_argument("--references", type=Path, default=None, metavar="DIR",
                   help="`python -m sim.calibrate --sessions DIR` on the same sessions: adds the "
                        "difference as a share of the Random->Oracle headroom")
    args = p.parse_args(argv)
    try:
        a, b = read_stats(args.a), read_stats(args.b)
        refs = {}
        if args.references is not None:
            for k in ("random", "oracle"):
                rows = read_stats(args.references / f"{k}.csv")
                same_sessions(a, rows)
                refs[k] = figures(rows)["time_per_session"]
        out = paired(a, b, refs.get("random"), refs.get("oracle"))
    except OSError as e:
        print(f"error: cannot read {e.filename} ({e.strerror}): pass stats files written by "
              f"`python -m sim.run --stats` or a `python -m sim.calibrate --sessions` folder", file=sys.stderr)
        return 2
    except JudgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
