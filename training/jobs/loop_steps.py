"""The steps of a loop day, each with one job: lay out the day's arms, play the day, score the
served lists offline, train and select tomorrow's challenger, record the day, promote.

`training.jobs.loop` runs them in order; they share the loop's state (`LoopState`) and time
themselves on the day's clock (`seconds.<step>` in the day's metrics and the report).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient

from training.ab.analysis import Analysis, Design
from training.ab.day import DayLog, DaySpec, References, Service, play_day
from training.ab.references import Reference
from training.errors import JobError
from training.jobs.challengers import (Candidate, score_heldout, select, split_by_user, tag_version,
                                       train_candidate, train_challengers)
from training.jobs.configs import LoopConfig
from training.registry import tracking
from training.registry.promotion import commit
from training.registry.versions import is_learned
from training.reports.trend import TREND_COLUMNS
from training.runlog import Clock, log_metrics, log_path

#: Offline figures of a training run shown for every candidate (the selection figure besides).
OFFLINE = ("test_mse", "recall_at_10", "ndcg_at_10", "recall_at_50", "ndcg_at_50")
#: Labels of the cold start's recommender kinds (day 0's arms).
KIND_LABELS = {"random": "Random (C)", "sticky_artist": "StickyArtist", "toppop": "TopPop"}
RANDOM = "Random (C)"


@dataclass
class Served:
    """A registered version whose i2i lists a day serves."""

    version: str
    recipe: str
    trained_on: tuple[int, ...]
    lists: Path


@dataclass(frozen=True)
class Arm:
    arm: str
    label: str
    recommender: str
    policy: str | None = None
    lists: str | None = None          # champion | challenger
    version: str | None = None


@dataclass
class LoopState:
    """What the loop knows between its days."""

    cfg: LoopConfig
    run_id: str
    work: Path
    world: Path                                   # the world's folder
    port: int = 0
    n_tracks: int = 0                             # the world's catalog (known once the world is)
    champion: Served | None = None
    challenger: Served | None = None
    window: list[tuple[int, Path]] = field(default_factory=list)
    trend: list[pd.DataFrame] = field(default_factory=list)
    days: list[dict] = field(default_factory=list)
    offline: list[dict] = field(default_factory=list)
    served_offline: list[dict] = field(default_factory=list)   # served lists' offline figures beside their reward
    refs: dict[int, dict[str, Reference]] = field(default_factory=dict)   # each day's own references
    times: list[dict] = field(default_factory=list)            # per day: seconds per step
    lists: dict[str, Path] = field(default_factory=dict)
    start_note: str = ""
    promotions: int = 0
    clock: Clock = field(default_factory=Clock)                # the current day's
    next_references: References | None = None                 # tomorrow's, started beside today
    started: float = field(default_factory=time.perf_counter)

    def trend_table(self) -> pd.DataFrame:
        return (pd.concat(self.trend, ignore_index=True) if self.trend
                else pd.DataFrame(columns=list(TREND_COLUMNS)))


# ----------------------------------------------------------------------- the day's arms

def ab_layout(cfg: LoopConfig, champion: Served, challenger: Served) -> tuple[list[Arm], dict[str, dict]]:
    """The day's arms (C = Random, then policy x {champion, challenger} lists) and recommenders."""
    arms = [Arm("C", RANDOM, "random")]
    recs: dict[str, dict] = {"random": {"kind": "random"}}
    for p, spec in cfg.policies.items():
        for role, served in (("champion", champion), ("challenger", challenger)):
            rec = f"{p.lower()}_{role}"
            recs[rec] = {**spec, "i2i": str(served.lists)}
            arms.append(Arm(f"T{len(arms)}", f"{p} × {role}", rec, p, role, served.version))
    return arms, recs


def design(arms: list[Arm], cfg: LoopConfig, experiment: str) -> Design:
    """The day's 2x2 `{policy: {champion: arm, challenger: arm}}` beside Random, read as the
    experiment reads its own: the challenger's lists are the treatment."""
    an = cfg.analysis
    return Design(experiment, {a.arm: a.label for a in arms},
                  {p: {a.lists: a.arm for a in arms if a.policy == p} for p in cfg.policy_names},
                  metric=an.primary_metric, alpha=an.alpha, srm_alpha=an.srm_alpha)


def cold_start_layout(service: Service) -> tuple[list[Arm], Design]:
    """Day 0's arms (the data-collection config's) and their design: no 2x2, Random first."""
    exp = service.experiments[0]
    arms = [Arm(a, KIND_LABELS.get(service.recommenders[r]["kind"], r), r) for a, r in exp["arms"].items()]
    return arms, Design(exp["name"], {a.arm: a.label for a in arms})


# ------------------------------------------------------------------------------ playing

def day_spec(st: LoopState, day: int, service: Service, episodes: int) -> DaySpec:
    """Day d of the loop is the job's (d + 1)-th day: the cold start is its first."""
    cfg = st.cfg
    return DaySpec(f"day {day}", st.work / f"day{day}", cfg.world, cfg.seed, day + 1, episodes, service,
                   port=st.port, references=cfg.reference_episodes, rerun=rerun_command(cfg))


def play(st: LoopState, day: int, arms: list[Arm], recs: dict[str, dict]) -> DayLog:
    """Serve the day's arms and play it (a fresh experiment name re-randomises the users); then
    start tomorrow's references, to run beside today's training."""
    service = Service(recs, [{"name": f"LOOP_DAY{day}", "arms": {a.arm: a.recommender for a in arms}}],
                      st.cfg.service_seed)
    with st.clock.step("play"):
        log = play_day(day_spec(st, day, service, st.cfg.episodes), st.next_references)
        st.next_references = None
    st.clock.reassign(log.seconds["references_wait"], "play", "references")
    if day < st.cfg.days:
        st.next_references = References.of(day_spec(st, day + 1, Service({}, []), st.cfg.episodes))
    return log


def rerun_command(cfg: LoopConfig) -> str:
    from training.jobs.configs import LOOP_CONFIG
    from training.paths import repo_path
    args = "" if Path(cfg.path) == repo_path(LOOP_CONFIG) else f" -P config={cfg.path}"
    args += " -P quick=true" if cfg.quick else ""
    return f"`mlflow run . -e loop --env-manager local -P days={cfg.days} -P window={cfg.window}{args}`"


# ------------------------------------------------------------------- lists and champions

def lists_of(st: LoopState, version: str) -> Path:
    """The i2i lists of a version: its folder fetched once per loop (`training.registry.versions`)
    and its int32 table (`formats.learned`), which the day's service, the offline scoring and
    the promotion's deploy read memory-mapped."""
    if version not in st.lists:
        from formats import FormatError
        from formats import learned as learned_format
        from training.registry import versions
        with st.clock.step("export"):
            folder = versions.fetch(version, st.cfg.register, dst=st.work / "lists" / f"v{version}")
            try:
                learned_format.read(folder, st.n_tracks)
            except FormatError as e:
                raise JobError(f"`{st.cfg.register}` v{version}: {e}") from None
            st.lists[version] = folder / learned_format.TABLE
    return st.lists[version]


def served(st: LoopState, c: Candidate) -> Served:
    return Served(c.version, c.recipe, c.trained_on, lists_of(st, c.version))


def adoptable_champion(name: str, tracks: int) -> tuple[str | None, str]:
    """The registry's `@champion` when it can serve this world (its model covers exactly this
    catalog's tracks), with why or why not."""
    version = tracking.champion_version(name)
    if version is None:
        return None, f"`{name}` has no @{tracking.CHAMPION}"
    mv = MlflowClient().get_model_version(name, version)
    if not is_learned(mv):   # a model registered without a learner's lists (formats.learned)
        return None, f"`{name}@{tracking.CHAMPION}` (v{version}) holds no learner's lists"
    have = MlflowClient().get_run(mv.run_id).data.params.get("catalog_tracks")
    if have is None or int(have) != tracks:
        return None, (f"`{name}@{tracking.CHAMPION}` (v{version}) was trained on a {have}-track catalog, "
                      f"this world has {tracks}")
    return version, f"started from the registry's `{name}@{tracking.CHAMPION}` (v{version})"


def first_champion(st: LoopState) -> tuple[Served, Candidate | None]:
    """The registry's `@champion` when it fits this world, else the bootstrap recipe trained on
    day 0's log (returned as the candidate to promote without an A/B: nothing to test it against)."""
    cfg = st.cfg
    adopted, why = adoptable_champion(cfg.register, st.n_tracks)
    if adopted:
        tags = MlflowClient().get_model_version(cfg.register, adopted).tags
        days = tuple(int(x) for x in tags.get("days_trained_on", "").split(",") if x.strip().isdigit())
        st.start_note = f"{why}; no bootstrap model trained"
        return Served(adopted, tags.get("recipe", "registry"), days, lists_of(st, adopted)), None
    with st.clock.step("train"):
        boot = train_candidate(cfg.bootstrap, st.window, st.world, register=cfg.register, seed=cfg.seed, day=0,
                               parent=None, role="bootstrap", run_id=st.run_id, k=cfg.k)
    st.start_note = (f"{why}: the bootstrap recipe `{cfg.bootstrap.name}` trained on day 0's log (v{boot.version}) "
                     f"became @{tracking.CHAMPION} without an A/B (nothing to test it against)")
    return served(st, boot), boot


def policy_options(cfg: LoopConfig, policy: str) -> dict:
    return {k: v for k, v in cfg.policies[policy].items() if k != "kind"}


def next_challenger(st: LoopState, day: int, parent: str) -> Served:
    """Every challenger recipe trained on the window, scored on held-out listeners of the
    newest day, and the one the next day serves.

    The newest day's log is split by user (`select.holdout` of them held out): the recipes
    train on the window without them and their lists are scored on those users' sessions, so
    the choice rests on sessions no candidate saw. With `holdout: 0` the figure is the
    training run's own (its held-out split of pairs)."""
    cfg = st.cfg
    window = st.window[-cfg.window:]
    heldout = None
    if cfg.select.holdout > 0:
        newest_day, newest = window[-1]
        parts = st.work / f"day{newest_day}" / "selection"
        train_part, heldout = split_by_user(newest, parts / "train", parts / "heldout", cfg.select.holdout,
                                            cfg.seed + newest_day)
        window = window[:-1] + [(newest_day, train_part)]
    with st.clock.step("train"):
        cands = train_challengers(cfg.challengers, window, st.world, register=cfg.register, seed=cfg.seed, day=day,
                                  parent=parent, run_id=st.run_id, k=cfg.k)
    with st.clock.step("select"):
        if heldout is not None:
            score_heldout(cands, heldout, st.world, lambda v: lists_of(st, v), cfg.k,
                          policy_options(cfg, cfg.promotion.policy))
        chosen = select(cands, cfg.select, cfg.path)
    record_offline(st, day, cands, chosen)
    return served(st, chosen)


def score_served(st: LoopState, day: int, log: DayLog, arms: list[Arm], an: Analysis) -> dict[str, float]:
    """The offline figures of the day's two lists on the day's own log (neither was trained
    on it), kept beside what each served under the promotion policy: across days, the report
    says which figure ranks lists as served reward does."""
    from training.learning import offline
    cfg = st.cfg
    with st.clock.step("score"):
        figs = offline.score_files({role: getattr(st, role).lists for role in ("champion", "challenger")},
                                   log.logs, st.world, k=cfg.k,
                                   session_aware=policy_options(cfg, cfg.promotion.policy))
    out = {}
    for a in arms:
        if a.policy == cfg.promotion.policy and a.lists in figs and a.arm in an.per_arm.index:
            st.served_offline.append({"day": day, "lists": a.lists, "version": a.version,
                                      "served": float(an.per_arm.loc[a.arm, "mean"]), **figs[a.lists]})
            out |= {f"offline_served.{a.lists}.{k}": v for k, v in figs[a.lists].items()}
    return out


def move_champion(st: LoopState, version: str, lists: Path, *, day: int, reason: str, expected: str | None) -> None:
    """Promote `version` the one way every job does (`training.registry.promotion.commit`):
    under the promotion lock, only if `@champion` still names `expected`, the lists deployed
    (when configured) before the alias moves, all or nothing."""
    cfg = st.cfg
    with st.clock.step("promote"):
        try:
            done = commit(version, cfg.register, expected, cfg.promotion.deploy or {}, {"champion": version},
                          i2i={"champion": lists})
        except Exception as e:   # deploy or alias failed: commit undid both
            raise JobError(f"day {day}: not promoted: deploying v{version} failed: {e}") from None
        if not done.promoted:
            raise JobError(f"day {day}: {done.reason}")
        if done.deployed:
            mlflow.set_tag("deployed", json.dumps(done.deployed))
        tag_version(cfg.register, version, {"promoted_on_day": day, "promoted_by_run": st.run_id})
    print(f"[promotion] `{cfg.register}` v{version} is @{tracking.CHAMPION} (day {day}: {reason[:200]})", flush=True)


# ---------------------------------------------------------------------------- recording

def trend_rows(day: int, an: Analysis, arms: list[Arm]) -> pd.DataFrame:
    """One row per arm: what it served (mean [CI]) and its share of the day's headroom."""
    by = {a.arm: a for a in arms}
    rows = []
    for arm, r in an.per_arm.iterrows():
        a = by.get(arm, Arm(arm, arm, arm))
        rows.append({"day": day, "arm": arm, "label": a.label, "policy": a.policy or "", "lists": a.lists or "",
                     "version": a.version or "", **{k: r[k] for k in r.index if k != "label"}})
    return pd.DataFrame(rows).reindex(columns=list(TREND_COLUMNS))


def metric_key(label: str) -> str:
    """`SessionAware × champion` -> `sessionaware.champion` (an MLflow metric name)."""
    return label.replace(" (C)", "").replace(" × ", ".").replace(" ", "_").lower()


def day_metrics(rows: pd.DataFrame, refs: dict[str, Reference], an: Analysis | None = None) -> dict[str, float]:
    """The day's figures, indexed by day in MLflow: reward and headroom per arm, the model
    effects, the day's references."""
    out: dict[str, float] = {}
    for _, r in rows.iterrows():
        k = metric_key(r["label"])
        out |= {f"reward.{k}": r["mean"], f"reward.{k}.lower": r["lower"], f"reward.{k}.upper": r["upper"],
                f"headroom.{k}": r["headroom"], f"users.{k}": r["users"]}
    out |= {f"reference.{rid}.{k}": getattr(ref, k) for rid, ref in refs.items()
            for k in ("time_per_session", "headroom_share")}
    if an is not None:
        for p in an.design.factorial or {}:
            e = an.model_effect(p) or {}
            out |= {f"model_effect.{p.lower()}": e.get("effect")} | {
                f"model_effect.{p.lower()}.{k}": e.get(k) for k in ("lower", "upper", "lower_ratio", "upper_ratio",
                                                                    "p_holm")}
        out["srm_p_value"] = an.srm["p_value"]
    return out


def record_day(st: LoopState, day: int, log: DayLog, an: Analysis, promote: bool, reason: str) -> None:
    """The day's tables and files as the day run's artifacts, and its row of decisions."""
    with st.clock.step("report"):
        out = log.spec.folder / "report"
        out.mkdir(parents=True, exist_ok=True)
        an.table.to_csv(out / "effects.csv", index=False)
        an.factorial.to_csv(out / "factorial.csv", index=False)
        for f, where in ((out / "effects.csv", "report"), (out / "factorial.csv", "report"),
                         (log.service_config, "config"), (log.spec.folder / "episodes.csv", "day")):
            log_path(f, where)
    champion, challenger = st.champion, st.challenger
    eff = an.model_effect(st.cfg.promotion.policy) or {}
    st.days.append({"day": day, "champion": champion.version, "challenger": challenger.version,
                    "candidate": challenger.recipe, "trained_on": span(challenger.trained_on),
                    "model_effect": eff.get("effect"), "model_lower": eff.get("lower"),
                    "model_upper": eff.get("upper"), "model_p_holm": eff.get("p_holm"), "promoted": promote,
                    "champion_after": (challenger if promote else champion).version, "seconds": st.clock.total(),
                    "reason": reason})


def record_offline(st: LoopState, day: int, cands: list[Candidate], chosen: Candidate) -> dict[str, float]:
    """The candidates' figures as report rows; returns them as the day's metrics."""
    key = st.cfg.select.key
    metrics = {}
    for c in cands:
        row = {"day": day, "candidate": c.recipe, "version": c.version, "trained_on": span(c.trained_on),
               "selected": c is chosen, key: c.metrics.get(key)}
        row |= {k: v for k, v in c.metrics.items() if k.startswith("heldout.") and k != key}
        row |= {f"train.{k}": c.metrics.get(k) for k in OFFLINE}
        st.offline.append(row)
        metrics |= {f"offline.{c.recipe}.{k}": v for k, v in c.metrics.items()
                    if (k in OFFLINE or k.startswith("heldout.")) and v is not None}
    log_metrics(metrics, step=day, parent=st.run_id)
    return metrics


def span(days: tuple[int, ...]) -> str:
    if not days:
        return ""
    return str(days[0]) if len(days) == 1 else f"{days[0]}-{days[-1]}"
