"""The jobs' settings, read one way for both: a job's YAML (training/config/experiment.yml,
loop.yml), its `quick:` overlay, then the entry point's parameters. Priority: a `-P` value
over `quick` over the YAML.

Every key is checked before anything runs, so a typo fails in a second rather than after a
day of simulation; a bad key fails with one message shape: the file, the key, what is
allowed and what was found.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.ab.analysis import Design
from training.ab.stats import AnalysisError
from training.ab.tables import check_design
from training.errors import JobError
from training.paths import REPO, repo_path
from training.registry.promotion import TESTS
from training.yamlfile import read_mapping

EXPERIMENT_CONFIG = "training/config/experiment.yml"
LOOP_CONFIG = "training/config/loop.yml"
#: Service kinds a loop policy may use: each reads one i2i file (the lists factor of the 2x2).
POLICY_KINDS = ("contextual", "i2i_history", "session_aware", "exploring")
_MISSING = object()


def merge(base: dict, over: dict | None) -> dict:
    """`over` laid on `base`, recursively for mappings (neither is modified)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


class Reader:
    """One mapping of a job's YAML, read key by key."""

    def __init__(self, data: Any, origin: str, prefix: str = "") -> None:
        self.data, self.origin, self.prefix = (data if isinstance(data, dict) else {}), origin, prefix

    def fail(self, key: str, allowed: str, got: Any = _MISSING) -> JobError:
        found = "" if got is _MISSING else f", got {got!r}"
        return JobError(f"{self.origin}: {self.prefix}{key} must be {allowed}{found}")

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise self.fail(key, "given (it is missing)")
            return default
        return self.data[key]

    def section(self, key: str, default: Any = _MISSING) -> "Reader":
        value = self.get(key, {} if default is _MISSING else default)
        if not isinstance(value, dict):
            raise self.fail(key, "a mapping", value)
        return Reader(value, self.origin, f"{self.prefix}{key}.")

    def integer(self, key: str, minimum: int, default: Any = _MISSING) -> int:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(key, f"an integer >= {minimum}", v)
        return v

    def number(self, key: str, low: float, high: float, default: Any = _MISSING, what: str = "") -> float:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v < high:
            raise self.fail(key, what or f"a number in [{low:g}, {high:g})", v)
        return float(v)

    def choice(self, key: str, choices, default: Any = _MISSING) -> str:
        v = self.get(key, default)
        if v not in choices:
            raise self.fail(key, f"one of {list(choices)}", v)
        return str(v)

    def text(self, key: str, default: Any = _MISSING) -> str:
        return " ".join(str(self.get(key, default)).split())

    def file(self, key: str, example: str) -> str:
        v = str(self.get(key))
        if not repo_path(v).is_file():
            raise self.fail(key, f"an existing file (e.g. {example})", v)
        return v

    def model(self, key: str, named: bool = True, learners: bool = False) -> "ModelSpec":
        """A model to train (`learners`: any learner by name or import path, the loop's) or reuse (`ref`)."""
        raw = self.get(key)
        allowed = {"name", "config", "overrides", "ref"} | ({"learner"} if learners else set())
        if not isinstance(raw, dict) or set(raw) - allowed or not (raw.get("config") or raw.get("ref")
                                                                   or raw.get("learner")) \
                or (named and not raw.get("name")):
            expected = ("{name, learner: NAME_OR_MODULE:CLASS, config: ITS_YAML, overrides: {...}}" if learners else
                        "{name, config: TRAINING_YAML, overrides: {...}} or {ref: VERSION_OR_ALIAS}")
            raise self.fail(key, expected, raw)
        spec = ModelSpec(str(raw.get("name") or key), str(raw.get("config") or ""), dict(raw.get("overrides") or {}),
                         str(raw.get("ref") or ""), str(raw.get("learner") or "embedding"))
        try:
            if learners:
                spec.learner_spec().make(REPO)
            elif spec.config:
                spec.train_config(0)
        except (FileNotFoundError, ValueError, TypeError) as e:
            raise self.fail(key, f"a {'learner' if learners else 'training recipe'} that loads ({e})", raw) from None
        return spec


@dataclass(frozen=True)
class ModelSpec:
    """A training recipe (a name the report uses, a training YAML and a few overrides), or `ref`,
    a registered version or alias reused without training."""

    name: str
    config: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    ref: str = ""
    learner: str = "embedding"          # the loop's: a learner's name or import path (training.learning.learners)

    def learner_spec(self):
        """The learner this names (`training.learning.learners.base.LearnerSpec`)."""
        from training.learning.learners.base import LearnerSpec
        return LearnerSpec(self.name, self.learner, self.config or None, dict(self.overrides))

    def train_config(self, seed: int):
        """The recipe's `TrainConfig` (the job's seed unless the overrides set one)."""
        from training.learning.train import TrainConfig
        return TrainConfig.from_yaml(repo_path(self.config), **{"seed": seed, **self.overrides})


@dataclass(frozen=True)
class AnalysisSettings:
    """`analysis:` of either job: the levels and the metric every table is read on."""

    alpha: float = 0.05
    srm_alpha: float = 0.001
    primary_metric: str = "mean_time_per_session"

    @classmethod
    def read(cls, r: Reader) -> "AnalysisSettings":
        return cls(r.number("alpha", 1e-9, 1, 0.05), r.number("srm_alpha", 1e-12, 1, 0.001),
                   r.text("primary_metric", "mean_time_per_session"))


@dataclass(frozen=True)
class PromotionSettings:
    """`promotion:` of either job: which model effect decides, by which test, and where a
    promoted version's lists are deployed (role -> BentoML model; None: nowhere)."""

    policy: str
    metric: str = "mean_time_per_session"
    test: str = "superiority"
    margin: float = 0.0                 # non_inferiority: how much worse (% of the baseline's mean) is allowed
    correction: str = "holm"
    deploy: dict[str, str] | None = None

    def rule(self) -> dict:
        """What `training.registry.promotion.decide` and `rule` read."""
        out = {"policy": self.policy, "metric": self.metric, "correction": self.correction, "test": self.test}
        return {**out, "margin": self.margin} if self.test == "non_inferiority" else out

    @classmethod
    def read(cls, r: Reader, policies: list[str], roles: list[str]) -> "PromotionSettings":
        r.choice("effect", ["model"], "model")          # what is promoted is a model: its effect decides
        test = r.choice("test", TESTS, "superiority")
        margin = (r.number("margin", 1e-9, 100, what="a percentage in (0, 100) for a non_inferiority test")
                  if test == "non_inferiority" else 0.0)
        deploy = r.get("deploy", None)
        if deploy is not None and (not isinstance(deploy, dict) or not set(deploy) <= set(roles)
                                   or not all(isinstance(v, str) for v in deploy.values())):
            raise r.fail("deploy", f"null or {{ROLE: BENTOML_MODEL_NAME}} with roles among {roles}", deploy)
        return cls(r.choice("policy", policies), r.text("metric", "mean_time_per_session"), test, margin,
                   r.choice("correction", ("holm", "none"), "holm"), dict(deploy) if deploy else None)


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """What both jobs have: a world, a seed, a registered model, an analysis, a promotion."""

    path: str
    quick: bool
    world: str
    seed: int
    workdir: str
    register: str                       # the registered model the job trains into and promotes within
    k: int                              # i2i list length
    service_seed: int                   # the service's own randomness (Random, TopPop, ...)
    idea: str
    analysis: AnalysisSettings
    promotion: PromotionSettings
    resolved: dict                      # the merged YAML, as logged with the run


def _load(path: str | Path, kind: str, default: str, quick: bool, overrides: dict[str, Any]) -> tuple[Reader, dict]:
    """The YAML, `quick:` laid on it when asked, then each given `-P` value (dotted key -> value)."""
    p = repo_path(path)
    try:
        cfg = read_mapping(p, f"{kind} config", f"the default is {default}")
    except (FileNotFoundError, ValueError) as e:
        raise JobError(str(e)) from None
    overlay = cfg.pop("quick", {}) or {}
    cfg = merge(cfg, overlay) if quick else cfg
    for dotted, value in overrides.items():
        if value is not None:
            *parents, last = dotted.split(".")
            node = cfg
            for k in parents:
                node = node.setdefault(k, {})
            node[last] = value
    cfg.update(quick=bool(quick), config_path=str(p))
    return Reader(cfg, f"{kind} config {p}"), cfg


def _common(r: Reader, raw: dict, register: Reader, policies: list[str], roles: list[str],
            service_seed: int) -> dict:
    return dict(path=raw["config_path"], quick=raw["quick"], world=r.file("world", "sim/config/env.yml"),
                seed=r.integer("seed", 0), workdir=str(r.get("workdir")), register=register.text("register"),
                k=register.integer("k", 1, 50), service_seed=service_seed, idea=r.text("idea", ""),
                analysis=AnalysisSettings.read(r.section("analysis")),
                promotion=PromotionSettings.read(r.section("promotion"), policies, roles), resolved=raw)


# ------------------------------------------------------------------------ the experiment

@dataclass(frozen=True, kw_only=True)
class ExperimentConfig(JobConfig):
    collect_service: str                # day 1's service config (the cold start's arms)
    collect_episodes: int
    ab_episodes: int
    recommenders: dict[str, dict]       # day 2's recommenders; `{control_i2i}`, `{treatment_i2i}` filled in
    arms: dict[str, str]                # arm -> recommender
    design: Design
    models: dict[str, ModelSpec]        # control, treatment


def load_experiment(path: str | Path = EXPERIMENT_CONFIG, *, quick: bool = False, episodes: int | None = None,
                    seed: int | None = None, world: str | None = None) -> ExperimentConfig:
    r, raw = _load(path, "experiment", EXPERIMENT_CONFIG, quick,
                   {"days.collect.episodes": episodes, "days.ab.episodes": episodes, "seed": seed, "world": world})
    ab, days = r.section("ab"), r.section("days")
    recs, arms = ab.get("recommenders"), ab.get("arms")
    if not isinstance(arms, dict) or "C" not in arms:
        raise ab.fail("arms", "a mapping {ARM: RECOMMENDER} with a control arm C", arms)
    for arm, rec in arms.items():
        if not isinstance(recs, dict) or rec not in recs:
            raise ab.fail(f"arms.{arm}", f"a recommender of ab.recommenders ({sorted(recs or {})})", rec)
    headline = tuple(ab.get("headline", ())) or None
    contrasts = tuple(tuple(c) for c in ab.get("contrasts", []))
    for t, c in [*contrasts, *([headline] if headline else [])]:
        if t not in arms or c not in arms:
            raise ab.fail("headline/contrasts", f"pairs of arms of ab.arms ({list(arms)})", [t, c])
    design = ab.get("factorial")
    try:
        policies, levels = check_design(design) if isinstance(design, dict) else check_design({})
    except AnalysisError as e:
        raise ab.fail("factorial", f"the 2x2 {{POLICY: {{control: ARM, treatment: ARM}}}} ({e})", design) from None
    if levels != ["control", "treatment"]:
        raise ab.fail("factorial", "a 2x2 whose list levels are the models' roles [control, treatment]", levels)
    for pol in policies:
        for lv in levels:
            if design[pol][lv] not in arms:
                raise ab.fail(f"factorial.{pol}.{lv}", f"an arm of ab.arms ({list(arms)})", design[pol][lv])
    models = r.section("models")
    common = _common(r, raw, models, policies, ["champion", "baseline"], ab.integer("seed", 0, 42))
    an = common["analysis"]
    labels = ab.section("labels").data
    return ExperimentConfig(
        **common, collect_service=r.section("collect").file("service_config", "service/config/cold_start.yml"),
        collect_episodes=days.section("collect").integer("episodes", 10),
        ab_episodes=days.section("ab").integer("episodes", 10), recommenders=dict(recs), arms=dict(arms),
        design=Design(str(ab.get("name")), {a: str(labels.get(rec, rec)) for a, rec in arms.items()},
                      {p: dict(design[p]) for p in policies}, headline, contrasts, an.primary_metric, an.alpha,
                      an.srm_alpha),
        models={role: models.model(role, named=False) for role in ("control", "treatment")})


# ------------------------------------------------------------------------------ the loop

@dataclass(frozen=True)
class SelectSettings:
    """How the next day's challenger is chosen among the recipes trained on the window."""

    metric: str
    mode: str = "max"                   # max | min
    holdout: float = 0.0                # share of the newest day's users held out to score them (0: training's own split)
    why: str = ""

    @property
    def key(self) -> str:
        """Where the figure is among a candidate's metrics: held-out listeners' or the training run's."""
        return f"heldout.{self.metric}" if self.holdout > 0 else self.metric


@dataclass(frozen=True, kw_only=True)
class LoopConfig(JobConfig):
    days: int
    window: int
    episodes: int
    cold_start_service: str
    cold_start_episodes: int
    bootstrap: ModelSpec
    challengers: tuple[ModelSpec, ...]
    select: SelectSettings
    policies: dict[str, dict]           # {policy: recommender spec without its i2i}, the baseline first
    reference_episodes: int             # each day's first sessions the references play
    goal_over_anchor: float

    @property
    def policy_names(self) -> list[str]:
        return list(self.policies)


def load_loop(path: str | Path = LOOP_CONFIG, *, quick: bool = False, days: int | None = None,
              window: int | None = None, episodes: int | None = None, seed: int | None = None,
              world: str | None = None, workdir: str | None = None) -> LoopConfig:
    r, raw = _load(path, "loop", LOOP_CONFIG, quick,
                   {"days": days, "window": window, "episodes": episodes, "cold_start.episodes": episodes,
                    "seed": seed, "world": world, "workdir": workdir})
    svc = r.section("service")
    policies = svc.get("policies")
    if not isinstance(policies, dict) or len(policies) != 2:
        raise svc.fail("policies", "two policies (the 2x2's policy factor), the baseline first", policies)
    for name, spec in policies.items():
        if not isinstance(spec, dict) or spec.get("kind") not in POLICY_KINDS or "i2i" in spec:
            raise svc.fail(f"policies.{name}", f"a recommender of kind {list(POLICY_KINDS)} without `i2i` "
                                               "(the loop fills in the day's lists)", spec)
    challengers = r.get("challengers")
    if not isinstance(challengers, list) or not challengers:
        raise r.fail("challengers", "a non-empty list of {name, learner, config, overrides}", challengers)
    listed = Reader({f"challengers[{i}]": c for i, c in enumerate(challengers)}, r.origin)
    specs = tuple(listed.model(f"challengers[{i}]", learners=True) for i in range(len(challengers)))
    if len({s.name for s in specs}) != len(specs) or any(s.ref for s in specs):
        raise r.fail("challengers", "recipes with unique names (no `ref`)", [s.name for s in specs])
    sel, cold = r.section("select"), r.section("cold_start")
    return LoopConfig(
        **_common(r, raw, r, list(policies), ["champion"], svc.integer("seed", 0, 42)),
        days=r.integer("days", 1), window=r.integer("window", 1), episodes=r.integer("episodes", 10),
        cold_start_service=cold.file("service_config", "service/config/cold_start.yml"),
        cold_start_episodes=cold.integer("episodes", 10), bootstrap=r.model("bootstrap", learners=True),
        challengers=specs,
        select=SelectSettings(sel.text("metric"), sel.choice("mode", ("max", "min"), "max"),
                              sel.number("holdout", 0, 1, 0.0), sel.text("why", "")),
        policies={str(k): dict(v) for k, v in policies.items()},
        reference_episodes=r.section("references").integer("episodes", 2, 1000),
        goal_over_anchor=r.section("goal").number("over_anchor_catalog", -1, 1, 0.25))
