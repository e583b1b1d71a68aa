"""The experiment's settings: one YAML (`training/config/experiment.yml`), its `quick:`
overlay and the entry point's overrides, checked once before anything runs, so a typo in
an arm or a contrast fails in a second rather than after a day of simulation."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from training.registry import tracking
from training.ab.analysis import AnalysisError, check_design
from training.errors import JobError
from training.paths import REPO, repo_path  # noqa: F401 (re-exported for the jobs)

DEFAULT_CONFIG = "training/config/experiment.yml"
REQUIRED = ("world", "seed", "days", "collect", "models", "ab", "analysis", "promotion")


def merge(base: dict, over: dict | None) -> dict:
    """`over` laid on `base`, recursively for mappings (neither is modified)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load_settings(path: str | Path, *, quick: bool = False, episodes: int = 0, seed: int = -1,
                  world: str = "") -> dict:
    """The experiment's YAML, with `quick:` merged in and the entry point's overrides applied."""
    p = repo_path(path)
    if not p.is_file():
        raise JobError(f"experiment config {p} not found (the default is {DEFAULT_CONFIG})")
    try:
        cfg = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise JobError(f"experiment config {p} is not valid YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise JobError(f"experiment config {p}: expected a mapping at the top level")
    for key in REQUIRED:
        if key not in cfg:
            raise JobError(f"experiment config {p}: missing {key!r}")
    quick_cfg = cfg.pop("quick", {}) or {}
    if quick:
        cfg = merge(cfg, quick_cfg)
    if episodes > 0:
        cfg["days"]["collect"]["episodes"] = episodes
        cfg["days"]["ab"]["episodes"] = episodes
    if seed >= 0:
        cfg["seed"] = seed
    if world:
        cfg["world"] = world
    cfg["quick"] = bool(quick)
    cfg["config_path"] = str(p)
    arms = cfg["ab"]["arms"]
    if "C" not in arms:
        raise JobError(f"experiment config {p}: ab.arms needs a control arm 'C'")
    for arm, rec in arms.items():
        if rec not in cfg["ab"]["recommenders"]:
            raise JobError(f"experiment config {p}: arm {arm} names unknown recommender {rec!r}")
    for t, c in [*(cfg["ab"].get("contrasts") or []), *([cfg["ab"]["headline"]] if cfg["ab"].get("headline") else [])]:
        if t not in arms or c not in arms:
            raise JobError(f"experiment config {p}: contrast {t} vs {c} names an arm not in ab.arms")
    design = cfg["ab"].get("factorial")
    if not design:
        raise JobError(f"experiment config {p}: ab.factorial (the 2x2 {{policy: {{control: ARM, treatment: ARM}}}}) "
                       "is missing; the promotion is decided by its model effect")
    try:
        policies, levels = check_design(design)
    except AnalysisError as e:
        raise JobError(f"experiment config {p}: ab.factorial: {e}") from None
    if levels != ["control", "treatment"]:
        raise JobError(f"experiment config {p}: ab.factorial's list levels must be the models' roles "
                       f"[control, treatment], got {levels}")
    for pol in policies:
        for lv in levels:
            if design[pol][lv] not in arms:
                raise JobError(f"experiment config {p}: ab.factorial {pol}.{lv} = {design[pol][lv]} is not in ab.arms")
    pr = cfg["promotion"]
    if pr.get("effect", "model") != "model":
        raise JobError(f"experiment config {p}: promotion.effect must be 'model' (what is promoted is a model)")
    if pr.get("policy") not in policies:
        raise JobError(f"experiment config {p}: promotion.policy {pr.get('policy')!r} is not a policy of "
                       f"ab.factorial ({', '.join(policies)})")
    if pr.get("correction", "holm") not in ("holm", "none"):
        raise JobError(f"experiment config {p}: promotion.correction must be holm or none")
    return cfg


def registered_name(cfg: dict) -> str:
    """The registered model the experiment trains into and promotes within.

    A model's track ids belong to the world it was trained on, so each world keeps its own
    registered model (quick runs on the small world must not move the default world's champion).
    """
    return str(cfg["models"].get("register") or tracking.MODEL_NAME)
