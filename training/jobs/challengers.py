"""Tomorrow's challenger: the learners trained on the window's logs and registered with their
lineage, scored on listeners none of them saw, and the best chosen.

`train_challengers` is the one call the loop makes to get candidates (any learner of
`training.learning.learners`, by name or import path); `train_recipe` the one place the
experiment trains and registers its embedding recipes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from mlflow import MlflowClient

from formats import events as event_format
from training.errors import JobError
from training.jobs.configs import ModelSpec, SelectSettings


@dataclass
class Candidate:
    """A recipe trained on the window: its registered version and its offline figures."""

    recipe: str
    version: str
    run_id: str
    metrics: dict[str, float]
    trained_on: tuple[int, ...]


def train_recipe(spec: ModelSpec, logs: list[Path], world: Path, *, register: str, seed: int, run_name: str,
                 what: str):
    """Train `spec` on the logs and register it under `register` (a `train` step run);
    returns the training's result (version, run id, metrics)."""
    from training.learning.train import train
    try:
        res = train(spec.train_config(seed), [str(p) for p in logs], str(world), register=register,
                    run_name=run_name, progress=False)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise JobError(f"{what}: training `{spec.name}` ({spec.config}) failed: {e}") from None
    if res.version is None:
        raise JobError(f"{what}: training `{spec.name}` registered no version")
    return res


def tag_version(name: str, version: str, tags: Mapping[str, Any]) -> None:
    client = MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))


def train_candidate(spec: ModelSpec, window: list[tuple[int, Path]], world: Path, *, register: str, seed: int,
                    day: int, parent: str | None, role: str, run_id: str, k: int = 50) -> Candidate:
    """One learner trained on the window's logs (`training.learning.learn.train_learner`), its
    lists registered as a version of `register` with their lineage (days trained on, parent
    version, dataset digest, learner, recipe, role, the loop's run and day)."""
    from training.learning.learn import train_learner
    from training.learning.window import Window
    trained_on = tuple(d for d, _ in window)
    span = f"{trained_on[0]}-{trained_on[-1]}"
    try:
        res = train_learner(spec.learner_spec(), Window(tuple(str(p) for _, p in window), world, seed, trained_on),
                            k=k, register=register, run_name=f"learn {spec.name} on days {span}",
                            tags={"parent_version": parent or "none", "recipe": spec.name, "role": role,
                                  "loop_run_id": run_id, "loop_day": day})
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise JobError(f"day {day} {role}: learner `{spec.name}` ({spec.learner}) failed: {e}") from None
    return Candidate(spec.name, str(res.version), res.run_id, dict(res.figures), trained_on)


def train_challengers(recipes: tuple[ModelSpec, ...], window: list[tuple[int, Path]], world: Path, *, register: str,
                      seed: int, day: int, parent: str, run_id: str, k: int = 50) -> list[Candidate]:
    """Every challenger learner trained on the window (`(day, log folder)` pairs), registered as
    challengers of `parent` (tomorrow's champion)."""
    return [train_candidate(s, window, world, register=register, seed=seed, day=day, parent=parent,
                            role="challenger", run_id=run_id, k=k) for s in recipes]


def split_by_user(src: Path, train_dir: Path, heldout_dir: Path, share: float, seed: int) -> tuple[Path, Path]:
    """An event log folder in two by user (each line kept verbatim, each file's order kept):
    a `share` of the users, chosen by a seeded hash of the id, go to `heldout_dir`."""
    src = Path(src)
    files = event_format.log_files(src) if src.is_dir() else [src]
    if not files:
        raise JobError(f"no event log files in {src} to split for the challengers' selection")
    cut = int(round(share * 10_000))
    for d in (train_dir, heldout_dir):
        d.mkdir(parents=True, exist_ok=True)
    seen: dict[int, bool] = {}
    for f in files:
        with open(f) as fin, open(train_dir / f.name, "w") as ft, open(heldout_dir / f.name, "w") as fh:
            for line in fin:
                user = int(json.loads(line)["user"])
                if user not in seen:
                    h = hashlib.blake2b(f"{seed}:{user}".encode(), digest_size=8).digest()
                    seen[user] = int.from_bytes(h, "big") % 10_000 < cut
                (fh if seen[user] else ft).write(line)
    held = sum(seen.values())
    if held == 0 or held == len(seen):
        raise JobError(f"splitting {src} held out {held} of {len(seen)} users: the day is too small "
                       f"for select.holdout={share}")
    return train_dir, heldout_dir


def score_heldout(cands: list[Candidate], heldout: Path, world: Path, lists_of: Callable[[str], Path], k: int,
                  policy: Mapping) -> None:
    """Each candidate's lists scored on the held-out listeners' sessions (`training.learning.offline`,
    as the policy walks them), added to its metrics as `heldout.<figure>`."""
    from training.learning import offline
    lists = {c.recipe: lists_of(c.version) for c in cands}
    figures = offline.score_files(lists, heldout, world, k=k, session_aware=policy)
    for c in cands:
        c.metrics.update({f"heldout.{f}": v for f, v in figures[c.recipe].items()})


def select(cands: list[Candidate], settings: SelectSettings, config_path: str) -> Candidate:
    """The candidate the next day serves: best by the configured figure (ties: the first listed)."""
    key = settings.key
    for c in cands:
        if key not in c.metrics:
            raise JobError(f"select.metric {settings.metric!r} is not a figure of candidate `{c.recipe}` "
                           f"(it has {sorted(c.metrics)}); fix select.metric in {config_path}")
    sign = 1.0 if settings.mode == "max" else -1.0
    return max(cands, key=lambda c: sign * (c.metrics[key] if np.isfinite(c.metrics[key]) else -np.inf * sign))
