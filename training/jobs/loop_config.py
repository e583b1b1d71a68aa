"""The loop's settings: `training/config/loop.yml`, its `quick:` overlay and the entry
point's overrides, as one typed, checked object.

Everything is checked before day 0 starts (files exist, training configs parse, the two
policies are service kinds over i2i lists, the promotion policy is one of them), so a typo
fails in a second with the key and the fix, not after an hour of simulated days.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.errors import JobError
from training.registry.promotion import TESTS
from training.jobs.settings import merge, repo_path

DEFAULT_CONFIG = "training/config/loop.yml"
#: Service kinds a policy arm may use: each reads one i2i file (the lists factor of the 2x2).
POLICY_KINDS = ("contextual", "i2i_history", "session_aware")
REQUIRED = ("world", "seed", "days", "window", "episodes", "cold_start", "bootstrap", "challengers",
            "select", "service", "analysis", "promotion")


@dataclass(frozen=True)
class ModelSpec:
    """A training recipe: a name the report uses, a training YAML and a few overrides."""

    name: str
    config: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def train_config(self, seed: int):
        """The `TrainConfig` of this recipe (the loop's seed unless the overrides set one)."""
        from training.learning.train import TrainConfig
        return TrainConfig.from_yaml(repo_path(self.config), **{"seed": seed, **self.overrides})


@dataclass(frozen=True)
class LoopConfig:
    world: str
    seed: int
    days: int
    window: int
    episodes: int
    workdir: str
    register: str
    k: int
    cold_start_service: str
    cold_start_episodes: int
    bootstrap: ModelSpec
    challengers: tuple[ModelSpec, ...]
    select_metric: str
    select_mode: str
    select_why: str
    select_holdout: float              # share of the newest day's users held out to score the candidates
    service_seed: int
    policies: dict[str, dict]          # {policy name: recommender spec without its i2i}, baseline first
    alpha: float
    srm_alpha: float
    primary_metric: str
    promotion_policy: str
    promotion_metric: str
    correction: str
    promotion_test: str                # superiority | non_inferiority (training.registry.promotion.decide)
    promotion_margin: float            # the non-inferiority margin, % of the champion's mean
    deploy: dict[str, str] | None
    reference_episodes: int
    goal_over_anchor: float
    quick: bool
    config_path: str
    idea: str = ""
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def promotion(self) -> dict:
        """The promotion settings as `training.registry.promotion.decide` and `rule` read them."""
        out = {"policy": self.promotion_policy, "metric": self.promotion_metric, "correction": self.correction,
               "test": self.promotion_test}
        return {**out, "margin": self.promotion_margin} if self.promotion_test == "non_inferiority" else out

    @property
    def policy_names(self) -> list[str]:
        return list(self.policies)

    def as_dict(self) -> dict:
        """The resolved settings, as logged with the run."""
        return self.raw


def _fail(path: Path, msg: str) -> JobError:
    return JobError(f"loop config {path}: {msg}")


def _int(cfg: dict, key: str, path: Path, minimum: int) -> int:
    v = cfg.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise _fail(path, f"{key} must be an integer >= {minimum}, got {v!r}")
    return v


def _spec(raw: Any, where: str, path: Path) -> ModelSpec:
    if not isinstance(raw, dict) or not raw.get("config") or not raw.get("name"):
        raise _fail(path, f"{where} needs `name` and `config` (a training YAML), got {raw!r}")
    unknown = set(raw) - {"name", "config", "overrides"}
    if unknown:
        raise _fail(path, f"{where}: unknown keys {sorted(unknown)} (known: name, config, overrides)")
    spec = ModelSpec(str(raw["name"]), str(raw["config"]), dict(raw.get("overrides") or {}))
    try:
        spec.train_config(0)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise _fail(path, f"{where} ({spec.name}): {e}") from None
    return spec


def load_loop_config(path: str | Path = DEFAULT_CONFIG, *, quick: bool = False, days: int = 0, window: int = 0,
                     episodes: int = 0, seed: int = -1, world: str = "", workdir: str = "") -> LoopConfig:
    """The loop's YAML with `quick:` merged in and the entry point's overrides applied (0/-1/'': the config's)."""
    p = repo_path(path)
    if not p.is_file():
        raise JobError(f"loop config {p} not found (the default is {DEFAULT_CONFIG})")
    try:
        cfg = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise _fail(p, f"not valid YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise _fail(p, "expected a mapping at the top level")
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise _fail(p, f"missing {missing}")
    quick_cfg = cfg.pop("quick", {}) or {}
    if quick:
        cfg = merge(cfg, quick_cfg)
    for key, value, unset in (("days", days, 0), ("window", window, 0), ("episodes", episodes, 0),
                              ("seed", seed, -1), ("world", world, ""), ("workdir", workdir, "")):
        if value != unset:
            if key in ("days", "window", "episodes") and value < 1:
                raise JobError(f"loop: {key} must be at least 1 (0 means the config's), got {value}")
            cfg[key] = value
    cs = cfg.get("cold_start") or {}
    if episodes > 0:
        cs = {**cs, "episodes": episodes}

    if not repo_path(cfg["world"]).is_file():
        raise _fail(p, f"world config {cfg['world']} not found (e.g. sim/config/env.yml)")
    if not cs.get("service_config") or not repo_path(cs["service_config"]).is_file():
        raise _fail(p, f"cold_start.service_config {cs.get('service_config')!r} not found "
                       "(e.g. service/config/cold_start.yml)")
    challengers = cfg.get("challengers")
    if not isinstance(challengers, list) or not challengers:
        raise _fail(p, "challengers must be a non-empty list of {name, config, overrides}")
    specs = tuple(_spec(c, f"challengers[{i}]", p) for i, c in enumerate(challengers))
    if len({s.name for s in specs}) != len(specs):
        raise _fail(p, f"challenger names must be unique, got {[s.name for s in specs]}")

    sel = cfg["select"] or {}
    if sel.get("mode", "max") not in ("max", "min") or not sel.get("metric"):
        raise _fail(p, "select needs `metric` (a training metric, e.g. ndcg_at_50) and `mode: max|min`")
    if not isinstance(sel.get("holdout", 0.0), (int, float)) or not 0.0 <= float(sel.get("holdout", 0.0)) < 1.0:
        raise _fail(p, f"select.holdout must be a share in [0, 1) (0: score the candidates on their training "
                       f"run's own split), got {sel.get('holdout')!r}")
    svc = cfg["service"] or {}
    policies = svc.get("policies")
    if not isinstance(policies, dict) or len(policies) != 2:
        raise _fail(p, "service.policies must name exactly two policies (the 2x2's policy factor), "
                       f"baseline first, got {policies!r}")
    for name, spec in policies.items():
        if not isinstance(spec, dict) or spec.get("kind") not in POLICY_KINDS:
            raise _fail(p, f"service.policies.{name}: kind must be one of {list(POLICY_KINDS)} "
                           "(a policy over i2i lists)")
        if "i2i" in spec:
            raise _fail(p, f"service.policies.{name}: leave out `i2i`; the loop fills in the day's lists")
    pr = cfg["promotion"] or {}
    if pr.get("policy") not in policies:
        raise _fail(p, f"promotion.policy must be one of {list(policies)}, got {pr.get('policy')!r}")
    if pr.get("correction", "holm") not in ("holm", "none"):
        raise _fail(p, "promotion.correction must be holm or none")
    test = pr.get("test", "superiority")
    if test not in TESTS:
        raise _fail(p, f"promotion.test must be one of {list(TESTS)}, got {test!r}")
    margin = pr.get("margin")
    if test == "non_inferiority" and (isinstance(margin, bool) or not isinstance(margin, (int, float))
                                      or not 0 < margin < 100):
        raise _fail(p, f"promotion.margin must be a percentage in (0, 100) for a non_inferiority test "
                       f"(how much worse a challenger may be), got {margin!r}")
    an = cfg["analysis"] or {}
    deploy = pr.get("deploy")
    if deploy is not None and (not isinstance(deploy, dict) or set(deploy) != {"champion"}
                               or not isinstance(deploy["champion"], str)):
        raise _fail(p, "promotion.deploy must be null or {champion: BENTOML_MODEL_NAME} "
                       "(e.g. botify-i2i-treatment, what service/config/experiments.yml serves)")
    out = LoopConfig(
        world=str(cfg["world"]), seed=int(cfg["seed"]),
        days=_int(cfg, "days", p, 1), window=_int(cfg, "window", p, 1), episodes=_int(cfg, "episodes", p, 10),
        workdir=str(cfg.get("workdir") or "data/loop"), register=str(cfg.get("register") or "botify-embeddings"),
        k=_int({"k": cfg.get("k", 50)}, "k", p, 1),
        cold_start_service=str(cs["service_config"]), cold_start_episodes=_int(cs, "episodes", p, 10),
        bootstrap=_spec(cfg["bootstrap"], "bootstrap", p), challengers=specs,
        select_metric=str(sel["metric"]), select_mode=str(sel.get("mode", "max")),
        select_why=" ".join(str(sel.get("why", "")).split()), select_holdout=float(sel.get("holdout", 0.0)),
        service_seed=int(svc.get("seed", 42)), policies={str(k): dict(v) for k, v in policies.items()},
        alpha=float(an.get("alpha", 0.05)), srm_alpha=float(an.get("srm_alpha", 0.001)),
        primary_metric=str(an.get("primary_metric", "mean_time_per_session")),
        promotion_policy=str(pr["policy"]), promotion_metric=str(pr.get("metric", "mean_time_per_session")),
        correction=str(pr.get("correction", "holm")), promotion_test=str(test),
        promotion_margin=float(margin) if test == "non_inferiority" else 0.0,
        deploy=dict(deploy) if deploy else None,
        reference_episodes=_int(cfg.get("references") or {"episodes": 1000}, "episodes", p, 2),
        goal_over_anchor=float((cfg.get("goal") or {}).get("over_anchor_catalog", 0.25)),
        quick=bool(quick), config_path=str(p), idea=" ".join(str(cfg.get("idea", "")).split()),
        raw={**cfg, "cold_start": cs, "quick": bool(quick), "config_path": str(p)})
    return out
