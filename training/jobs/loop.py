"""Entry point `loop`: the recommender improving itself, one simulated day after another.

    mlflow run . -e loop --env-manager local [-P days=7] [-P window=3] [-P quick=true]
    python -m training.jobs.loop --quick

Day 0, the cold start: the service serves the data-collection arms (Random, StickyArtist,
TopPop), the simulator plays the day over HTTP and its log opens the training window. The
first `@champion` is the registry's, when it has one that fits this world's catalog;
otherwise the bootstrap recipe (the course's model) trained on day 0's log becomes champion
without an A/B (there is nothing to test it against; the report says so). The challenger
recipes are trained on the window and the best by the configured offline figure is chosen
to serve tomorrow.

Day d >= 1: the service serves Random (`C`, the headroom's floor) and, under each of two
policies (Contextual, SessionAware), the champion's lists and the challenger's: the 2x2 of
policy x lists. The simulator plays the day over HTTP; the log joins the window; the A/B is
analysed; tomorrow's challengers are trained on the window (not after the last day); the
challenger is promoted to `@champion` when its model effect under the product's policy
(SessionAware) passes `promotion.decide` (the loop's config: ahead and not worse than its
margin, a non-inferiority test), and the next day serves whichever is champion then.

MLflow: one parent run (named after what it did, e.g. `loop 7d seed 424242`, its
description the report's headline), a child run per day (`day 3: v9 promoted`), the day's
steps (collect, train, recommend) nested under the day. Metrics with `step=day` on the
parent (served reward and headroom share per arm, model effect with CI, offline figures),
the trend plot and the report as artifacts. Registered versions carry their lineage (days
trained on, parent version, dataset digest).

A day that fails (service, simulator, log, training, export, analysis) stops the loop with
a message; `@champion` moves only as the last act of a day that succeeded, so a failed day
never moves it. The report of the days done so far is still written and logged.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow import MlflowClient

from formats import events as event_format
from training.ab import analysis as A
from training.registry import tracking
from training.reports import trend as TR
from training.errors import JobError, is_job_failure
from training.jobs.loop_config import DEFAULT_CONFIG, LoopConfig, ModelSpec, load_loop_config
from training.ab.play import calibrate, check_log, play_day, write_service_config
from training.registry.promotion import commit, criterion, decide
from training.ab.references import Reference, ReferencesError, load_references
from training.jobs.settings import repo_path
from training.ab.simconfig import world_dir

EXPERIMENT = "botify-loop"
#: Offline figures of a training run shown for every candidate (the selection metric besides).
OFFLINE = ("test_mse", "recall_at_10", "ndcg_at_10", "recall_at_50", "ndcg_at_50")
#: Labels of the cold start's recommender kinds (day 0's arms).
KIND_LABELS = {"random": "Random (C)", "sticky_artist": "StickyArtist", "toppop": "TopPop"}
RANDOM = "Random (C)"


# ----------------------------------------------------------------------------- models

@dataclass
class Served:
    """A registered version whose i2i lists a day serves."""

    version: str
    recipe: str
    trained_on: tuple[int, ...]
    lists: Path


@dataclass
class Candidate:
    """A challenger recipe trained on the window: its version and offline figures."""

    recipe: str
    version: str
    run_id: str
    metrics: dict[str, float]
    trained_on: tuple[int, ...]


def _days(text: str | None) -> tuple[int, ...]:
    return tuple(int(x) for x in str(text).split(",") if x.strip().isdigit()) if text else ()


def tag_version(name: str, version: str, tags: dict[str, Any]) -> None:
    client = MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))


def train_recipe(spec: ModelSpec, window: list[tuple[int, Path]], world: Path, cfg: LoopConfig, *, day: int,
                 parent: str | None, role: str, run_id: str) -> Candidate:
    """Train one recipe on the window's logs and register it with its lineage (a `train` child run)."""
    from training.learning.train import train
    trained_on = tuple(d for d, _ in window)
    tcfg = spec.train_config(cfg.seed)
    try:
        res = train(tcfg, [str(p) for _, p in window], str(world), register=cfg.register,
                    run_name=f"train {spec.name} on days {trained_on[0]}-{trained_on[-1]}", progress=False)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise JobError(f"day {day}: training {role} `{spec.name}` ({spec.config}) failed: {e}") from None
    if res.version is None:
        raise JobError(f"day {day}: training {role} `{spec.name}` registered no version")
    digest = MlflowClient().get_run(res.run_id).data.tags.get("dataset_digest", "")
    tag_version(cfg.register, res.version, {
        "days_trained_on": ",".join(map(str, trained_on)), "parent_version": parent or "none",
        "dataset_digest": digest, "recipe": spec.name, "role": role, "loop_run_id": run_id, "loop_day": day})
    return Candidate(spec.name, res.version, res.run_id, dict(res.metrics), trained_on)


def select_key(cfg: LoopConfig) -> str:
    """Where the selection figure is found among a candidate's metrics: the held-out
    listeners' figure (`heldout.<figure>`) when the loop holds some out, else the training run's."""
    return f"heldout.{cfg.select_metric}" if cfg.select_holdout > 0 else cfg.select_metric


def select(cands: list[Candidate], cfg: LoopConfig) -> Candidate:
    """The candidate the next day serves: best by the configured offline figure (ties: the
    first recipe listed)."""
    key = select_key(cfg)
    for c in cands:
        v = c.metrics.get(key)
        if v is None:
            raise JobError(f"select.metric {cfg.select_metric!r} is not a figure of candidate `{c.recipe}` "
                           f"(it has {sorted(c.metrics)}); fix select.metric in {cfg.config_path}")
    sign = 1.0 if cfg.select_mode == "max" else -1.0
    return max(cands, key=lambda c: sign * (c.metrics[key] if np.isfinite(c.metrics[key]) else -np.inf * sign))


def split_by_user(src: Path, train_dir: Path, heldout_dir: Path, share: float, seed: int) -> tuple[Path, Path]:
    """An event log folder in two by user (each line kept verbatim, each file's order kept):
    a `share` of the users, chosen by a seeded hash of the id, go to `heldout_dir`."""
    import hashlib
    src = Path(src)
    files = event_format.log_files(src) if src.is_dir() else [src]
    if not files:
        raise JobError(f"no event log files in {src} to split for the challengers' selection")
    cut = int(round(share * 10_000))
    for d in (train_dir, heldout_dir):
        d.mkdir(parents=True, exist_ok=True)
    held_users = 0
    seen: dict[int, bool] = {}
    for f in files:
        with open(f) as fin, open(train_dir / f.name, "w") as ft, open(heldout_dir / f.name, "w") as fh:
            for line in fin:
                user = int(json.loads(line)["user"])
                if user not in seen:
                    h = hashlib.blake2b(f"{seed}:{user}".encode(), digest_size=8).digest()
                    seen[user] = int.from_bytes(h, "big") % 10_000 < cut
                    held_users += seen[user]
                (fh if seen[user] else ft).write(line)
    if held_users == 0 or held_users == len(seen):
        raise JobError(f"splitting {src} held out {held_users} of {len(seen)} users: the day is too small "
                       f"for select.holdout={share}")
    return train_dir, heldout_dir


def adoptable_champion(name: str, tracks: int) -> tuple[str | None, str]:
    """The registry's `@champion` when it can serve this world (its model covers exactly this
    catalog's tracks), with why or why not."""
    try:
        mv = tracking.resolve_version(tracking.CHAMPION, name)
    except tracking.RegistryError:
        return None, f"`{name}` has no @{tracking.CHAMPION}"
    params = MlflowClient().get_run(mv.run_id).data.params
    have = params.get("catalog_tracks")
    if have is None or int(have) != tracks:
        return None, (f"`{name}@{tracking.CHAMPION}` (v{mv.version}) was trained on a {have}-track catalog, "
                      f"this world has {tracks}")
    return str(mv.version), f"started from the registry's `{name}@{tracking.CHAMPION}` (v{mv.version})"


# --------------------------------------------------------------------------- the A/B

@dataclass(frozen=True)
class Arm:
    arm: str
    label: str
    recommender: str
    policy: str | None = None
    lists: str | None = None          # champion | challenger
    version: str | None = None


def ab_layout(cfg: LoopConfig, champion: Served, challenger: Served) -> tuple[list[Arm], dict[str, dict]]:
    """The day's arms (C = Random, then policy x {champion, challenger} lists) and recommenders."""
    arms = [Arm("C", RANDOM, "random")]
    recs: dict[str, dict] = {"random": {"kind": "random"}}
    i = 1
    for p, spec in cfg.policies.items():
        for role, served in (("champion", champion), ("challenger", challenger)):
            rec = f"{p.lower()}_{role}"
            recs[rec] = {**spec, "i2i": str(served.lists)}
            arms.append(Arm(f"T{i}", f"{p} × {role}", rec, p, role, served.version))
            i += 1
    return arms, recs


def design(arms: list[Arm], cfg: LoopConfig) -> dict[str, dict[str, str]]:
    """`{policy: {lists: arm}}`, the baseline policy and the champion's lists first."""
    return {p: {a.lists: a.arm for a in arms if a.policy == p} for p in cfg.policy_names}


@dataclass
class DayAnalysis:
    table: pd.DataFrame                    # the effects table of the day
    arms: pd.DataFrame                     # per arm: users, mean, CI, headroom (trend rows)
    model_effects: dict[str, dict]         # policy -> effect, lower, upper, p_value, p_holm (%)
    promote: bool
    reason: str
    srm_p_value: float


def analyse_day(events: pd.DataFrame, layout: list[Arm], cfg: LoopConfig, experiment: str,
                oracle: float) -> DayAnalysis:
    """The A/B of one day: per-arm served reward and headroom, the 2x2 of policy x lists
    (`analysis.factorial_table`: the model effect under each policy, challenger's lists vs the
    champion's, Holm within that family) and the promotion decision (`promotion.decide`: the
    model effect under the product's policy)."""
    users = A.user_metrics(events)
    arms = A.assign_arms(events, experiment)
    m = cfg.primary_metric
    labels = {a.arm: a.label for a in layout}
    des = design(layout, cfg)
    table = A.factorial_table(users, arms, des, experiment=experiment, labels=labels, alpha=cfg.alpha,
                              srm_alpha=cfg.srm_alpha, expected_arms=[a.arm for a in layout])
    ok, reason = decide(table, cfg.promotion)
    per_arm = TR.arm_means(users[m], arms, cfg.alpha)
    if "C" not in per_arm.index:
        raise A.AnalysisError(f"experiment {experiment!r}: no user in the Random arm C; the day is too small")
    per_arm = TR.with_headroom(per_arm, float(per_arm.loc["C", "mean"]), oracle)
    effects = {}
    for p, d in des.items():
        r = table[(table["treatment"] == d["challenger"]) & (table["control"] == d["champion"]) & (table["metric"] == m)]
        if not r.empty:
            r = r.iloc[0]
            effects[p] = {k: float(r[k]) for k in ("effect", "lower", "upper", "lower_ratio", "upper_ratio",
                                                   "p_value", "p_holm")}
    return DayAnalysis(table, per_arm, effects, ok, reason, float(table["srm_p_value"].iloc[0]))


def trend_rows(day: int, per_arm: pd.DataFrame, layout: list[Arm]) -> pd.DataFrame:
    by = {a.arm: a for a in layout}
    rows = []
    for arm, r in per_arm.iterrows():
        a = by.get(arm, Arm(arm, arm, arm))
        rows.append({"day": day, "arm": arm, "label": a.label, "policy": a.policy or "", "lists": a.lists or "",
                     "version": a.version or "", **{k: r[k] for k in r.index}})
    return pd.DataFrame(rows).reindex(columns=list(TR.TREND_COLUMNS))


def metric_name(key: str) -> str:
    """An MLflow-legal metric name (`artist_recall@50` -> `artist_recall_at_50`)."""
    import re
    return re.sub(r"[^\w./\- ]", "_", key.replace("@", "_at_"))


def metric_key(label: str) -> str:
    """`SessionAware × champion` -> `sessionaware.champion` (an MLflow metric name)."""
    return label.replace(" (C)", "").replace(" × ", ".").replace(" ", "_").lower()


# ------------------------------------------------------------------------------ the loop

@dataclass
class LoopState:
    run_id: str
    work: Path
    refs: dict[str, Reference]
    champion: Served | None = None
    challenger: Served | None = None
    window: list[tuple[int, Path]] = field(default_factory=list)
    trend: list[pd.DataFrame] = field(default_factory=list)
    days: list[dict] = field(default_factory=list)
    offline: list[dict] = field(default_factory=list)
    served_offline: list[dict] = field(default_factory=list)   # served lists' offline figures beside their reward
    lists: dict[str, Path] = field(default_factory=dict)
    start_note: str = ""
    promotions: int = 0


class Loop:
    def __init__(self, cfg: LoopConfig, run_id: str, *, port: int = 0) -> None:
        self.cfg = cfg
        self.port = port
        self.run_id = run_id
        self.work = repo_path(cfg.workdir) / run_id
        self.work.mkdir(parents=True, exist_ok=True)
        self.wdir = world_dir(repo_path(cfg.world))
        self.catalog = self.wdir / "public" / "tracks.json"
        self.client = MlflowClient()
        self.t_start = time.perf_counter()
        self.state: LoopState | None = None

    # ------------------------------------------------------------------ logging helpers
    def log_day_metrics(self, day: int, metrics: dict[str, float]) -> None:
        """On the parent with step=day (the trend in `mlflow ui`) and on the day's run."""
        clean = {metric_name(k): float(v) for k, v in metrics.items() if v is not None and np.isfinite(float(v))}
        mlflow.log_metrics(clean, step=day, run_id=self.run_id)
        mlflow.log_metrics(clean, step=day)

    def export_lists(self, version: str) -> Path:
        """The i2i lists of a version (exported once per loop, a `recommend` child run)."""
        if version not in self.state.lists:
            from training.registry.export import export
            out = export(version, self.work / "lists" / f"v{version}.jsonl", k=self.cfg.k, name=self.cfg.register)
            self.state.lists[version] = Path(out["output"])
        return self.state.lists[version]

    def served(self, c: Candidate) -> Served:
        return Served(c.version, c.recipe, c.trained_on, self.export_lists(c.version))

    # ------------------------------------------------------------------------ the run
    def run(self) -> dict:
        cfg = self.cfg
        tracking.log_params({
            "config_file": cfg.config_path, "world_config": cfg.world, "days": cfg.days, "window": cfg.window,
            "episodes": cfg.episodes, "seed": cfg.seed, "quick": cfg.quick, "register": cfg.register,
            "cold_start_episodes": cfg.cold_start_episodes, "bootstrap": json.dumps(cfg.bootstrap.__dict__),
            "challengers": json.dumps([c.__dict__ for c in cfg.challengers]), "select_metric": cfg.select_metric,
            "policies": json.dumps(cfg.policies), "promotion_policy": cfg.promotion_policy,
            "promotion_metric": cfg.promotion_metric, "correction": cfg.correction, "alpha": cfg.alpha})
        mlflow.set_tags({"botify.entry": "loop", "select_metric": cfg.select_metric, "select_why": cfg.select_why,
                         "loop_status": "running"})
        resolved = self.work / "loop.yml"
        resolved.write_text(yaml.safe_dump(cfg.as_dict(), sort_keys=False, allow_unicode=True))
        mlflow.log_artifact(str(resolved), "config")

        from training.jobs.world import ensure_world
        try:
            info = ensure_world(str(repo_path(cfg.world)))
        except RuntimeError as e:
            raise JobError(f"world generation failed: {e}") from None
        tracking.log_params({f"world.{k}": v for k, v in info.items() if not k.startswith("_")})

        t0 = time.perf_counter()
        try:
            cal = calibrate(cfg.world, cfg.reference_episodes, cfg.seed, self.work / "references")
            refs = load_references(cal)
        except ReferencesError as e:
            raise JobError(str(e)) from None
        mlflow.log_artifact(str(cal), "references")
        mlflow.log_metrics({f"reference.{rid}.{k}": getattr(r, k) for rid, r in refs.items()
                            for k in ("time_per_session", "headroom_share")}
                           | {"references_seconds": time.perf_counter() - t0})
        print(f"[references] {len(refs)} figures from {cfg.reference_episodes} calibration episodes "
              f"({time.perf_counter() - t0:.0f}s): " + ", ".join(f"{k} {r.headroom_share:.2f}" for k, r in refs.items()),
              flush=True)
        self.state = LoopState(self.run_id, self.work, refs)
        failure = None
        try:
            self.cold_start()
            for day in range(1, cfg.days + 1):
                self.ab_day(day)
        except BaseException as e:
            failure = str(e).splitlines()[0][:500] if str(e) else type(e).__name__
            mlflow.set_tags({"loop_status": "failed", "loop_failure": str(e)[:4000]})
            raise
        finally:
            self.finish(failure)
        mlflow.set_tag("loop_status", "finished")
        return self.summary()

    # ------------------------------------------------------------------- day 0
    def cold_start(self) -> None:
        cfg, st = self.cfg, self.state
        from training.jobs.collect import collect
        from training.data.events import read_events
        t_day = time.perf_counter()
        with tracking.step_run("day 0: cold start", entry="loop-day") as day_run:
            mlflow.set_tag("loop.day", "0")
            before = tracking_champion(cfg.register)
            mlflow.set_tag("champion_before", before or "none")
            t0 = time.perf_counter()
            try:
                got = collect(str(repo_path(cfg.world)), str(repo_path(cfg.cold_start_service)),
                              cfg.cold_start_episodes, cfg.seed, days=1, out_root=self.work / "day0",
                              run_name="collect day 0", stream=False)
            except (JobError, FileNotFoundError, ValueError) as e:
                raise JobError(f"day 0 (cold start) failed: {e}") from None
            play_s = time.perf_counter() - t0
            log = Path(got["log"])
            events = read_events(log)
            check_log(events, pd.read_csv(got["stats"]), log)
            st.window.append((0, log))
            print(f"[day 0] cold start: {len(events)} events from {cfg.cold_start_episodes} episodes ({play_s:.0f}s)",
                  flush=True)

            # what day 0's arms served (the trend's first points)
            base = yaml.safe_load(repo_path(cfg.cold_start_service).read_text())
            exp = base["experiments"][0]
            layout = [Arm(a, KIND_LABELS.get(base["recommenders"][r]["kind"], r), r) for a, r in exp["arms"].items()]
            users = A.user_metrics(events)
            per_arm = TR.arm_means(users[cfg.primary_metric], A.assign_arms(events, exp["name"]), cfg.alpha)
            floor = float(per_arm.loc["C", "mean"]) if "C" in per_arm.index else st.refs["random"].time_per_session
            per_arm = TR.with_headroom(per_arm, floor, st.refs["oracle"].time_per_session)
            st.trend.append(trend_rows(0, per_arm, layout))

            # the first champion: the registry's if it fits this world, else the bootstrap recipe
            t0 = time.perf_counter()
            tracks = sum(1 for _ in open(self.catalog))
            champion_at_start = tracking_champion(cfg.register)
            adopted, why = adoptable_champion(cfg.register, tracks)
            bootstrap: Candidate | None = None
            if adopted:
                tags = self.client.get_model_version(cfg.register, adopted).tags
                champion = Served(adopted, tags.get("recipe", "registry"), _days(tags.get("days_trained_on")),
                                  self.export_lists(adopted))
                st.start_note = f"{why}; no bootstrap model trained"
            else:
                bootstrap = train_recipe(cfg.bootstrap, st.window, self.wdir, cfg, day=0, parent=None,
                                         role="bootstrap", run_id=self.run_id)
                champion = self.served(bootstrap)
                st.start_note = (f"{why}: the bootstrap recipe `{cfg.bootstrap.name}` trained on day 0's log "
                                 f"(v{bootstrap.version}) became @{tracking.CHAMPION} without an A/B (nothing to "
                                 f"test it against)")
            challenger = self.next_challenger(0, champion.version)
            train_s = time.perf_counter() - t0
            metrics = self.trend_metrics(0) | {"play_seconds": play_s, "train_seconds": train_s,
                                               "day_seconds": time.perf_counter() - t_day,
                                               "champion_version": float(champion.version)}
            self.log_day_metrics(0, metrics)
            mlflow.log_artifact(got["stats"], "day")
            # the last act: the bootstrap champion (only when the registry had none that fits)
            if bootstrap is not None:
                self.move_champion(bootstrap.version, champion.lists, day=0, reason="bootstrap",
                                   expected=champion_at_start)
            st.champion, st.challenger = champion, challenger
            after = tracking_champion(cfg.register)
            name = (f"day 0: cold start, v{champion.version} bootstrapped" if bootstrap else
                    f"day 0: cold start, champion v{champion.version}")
            mlflow.set_tags({"champion_after": after or "none", "challenger_next": challenger.version,
                             "promotion": "bootstrap" if bootstrap else "not promoted", "promotion_reason": st.start_note,
                             "mlflow.runName": name})
            st.days.append({"day": 0, "champion": before or "", "challenger": "", "candidate": "",
                            "trained_on": "", "promoted": bootstrap is not None, "champion_after": after or "",
                            "seconds": time.perf_counter() - t_day, "reason": st.start_note})
            print(f"[day 0] champion v{champion.version} ({champion.recipe}); challenger for day 1: "
                  f"v{challenger.version} ({challenger.recipe}) ({time.perf_counter() - t_day:.0f}s)", flush=True)
            self.write_outputs()

    # --------------------------------------------------------------------- day d
    def ab_day(self, day: int) -> None:
        cfg, st = self.cfg, self.state
        from training.data.events import read_events
        t_day = time.perf_counter()
        champion, challenger = st.champion, st.challenger
        with tracking.step_run(f"day {day}", entry="loop-day"):
            mlflow.set_tags({"loop.day": str(day), "champion_before": champion.version,
                             "challenger": challenger.version})
            now = tracking_champion(cfg.register)
            if now != champion.version:
                raise JobError(f"day {day}: `{cfg.register}@{tracking.CHAMPION}` is v{now}, but the loop's champion "
                               f"is v{champion.version}: another run moved it; run the loop again")
            experiment = f"LOOP_DAY{day}"
            layout, recs = ab_layout(cfg, champion, challenger)
            ddir = self.work / f"day{day}"
            svc = write_service_config(ddir / "service.yml", catalog=self.catalog, log_dir=ddir / "logs",
                                       seed=cfg.service_seed, recommenders=recs,
                                       experiments=[{"name": experiment, "arms": {a.arm: a.recommender for a in layout}}])
            t0 = time.perf_counter()
            try:
                stats = play_day(svc, cfg.world, cfg.episodes, cfg.seed + day, ddir, False, self.port)
            except JobError as e:
                raise JobError(f"day {day} failed: {e}") from None
            events = read_events(ddir / "logs")
            check_log(events, stats, ddir / "logs")
            play_s = time.perf_counter() - t0

            an = analyse_day(events, layout, cfg, experiment, st.refs["oracle"].time_per_session)
            st.trend.append(trend_rows(day, an.arms, layout))
            st.window.append((day, ddir / "logs"))
            new_champion = challenger if an.promote else champion
            t0 = time.perf_counter()
            served_figs = self.score_served(day, ddir / "logs", layout, an) if cfg.select_holdout > 0 else {}
            score_s = time.perf_counter() - t0
            print(f"[day {day}] {len(events)} events ({play_s:.0f}s); " + "; ".join(
                f"{a.label} {an.arms.loc[a.arm, 'mean']:.2f} ({an.arms.loc[a.arm, 'headroom']:.2f})"
                for a in layout if a.arm in an.arms.index), flush=True)

            # tomorrow's challenger, trained on the window (its parent: tomorrow's champion)
            t0 = time.perf_counter()
            nxt = None
            if day < cfg.days:
                nxt = self.next_challenger(day, new_champion.version)
            train_s = time.perf_counter() - t0

            out = ddir / "report"
            out.mkdir(parents=True, exist_ok=True)
            an.table.to_csv(out / "effects.csv", index=False)
            effects = {}
            for p, e in an.model_effects.items():
                effects |= {f"model_effect.{p.lower()}": e["effect"]} | {
                    f"model_effect.{p.lower()}.{k}": e[k] for k in ("lower", "upper", "lower_ratio", "upper_ratio", "p_holm")}
            metrics = self.trend_metrics(day) | effects | {
                "srm_p_value": an.srm_p_value, "events": len(events), "play_seconds": play_s, "train_seconds": train_s,
                "offline_seconds": score_s, **served_figs,
                "promoted": float(an.promote), "champion_version": float(new_champion.version),
                "day_seconds": time.perf_counter() - t_day}
            self.log_day_metrics(day, metrics)
            mlflow.log_artifact(str(out / "effects.csv"), "report")
            mlflow.log_artifact(str(svc), "config")
            mlflow.log_artifact(str(ddir / "episodes.csv"), "day")
            eff = an.model_effects.get(cfg.promotion_policy, {})
            st.days.append({"day": day, "champion": champion.version, "challenger": challenger.version,
                            "candidate": challenger.recipe, "trained_on": _span(challenger.trained_on),
                            "model_effect": eff.get("effect"), "model_lower": eff.get("lower"),
                            "model_upper": eff.get("upper"), "model_p_holm": eff.get("p_holm"),
                            "promoted": an.promote, "champion_after": new_champion.version,
                            "seconds": time.perf_counter() - t_day, "reason": an.reason})
            self.write_outputs()

            # the last act of a day that succeeded: move @champion
            if an.promote:
                self.move_champion(challenger.version, challenger.lists, day=day, reason=an.reason,
                                   expected=champion.version)
                st.promotions += 1
            verb = f"v{challenger.version} promoted" if an.promote else f"v{champion.version} kept"
            mlflow.set_tags({"promotion": "promoted" if an.promote else "not promoted", "promotion_reason": an.reason,
                             "champion_after": tracking_champion(cfg.register) or "none",
                             "challenger_next": nxt.version if nxt else "", "mlflow.runName": f"day {day}: {verb}"})
            st.champion, st.challenger = new_champion, nxt
            print(f"[day {day}] {an.reason} ({time.perf_counter() - t_day:.0f}s)", flush=True)

    # ------------------------------------------------------------- the challengers
    def next_challenger(self, day: int, parent: str) -> Served:
        """Train every challenger recipe on the window, score each one's lists on held-out
        listeners of the newest day, and return the one the next day serves.

        The newest day's log is split by user (`select.holdout` of them held out, by a hash of
        the user id): the recipes train on the window without them, and their lists are scored
        on those users' sessions by `training.learning.offline` (as SessionAware uses the lists), so the
        choice rests on sessions no candidate saw. With `holdout: 0` the figure is the
        training run's own (its held-out split of pairs).
        """
        cfg, st = self.cfg, self.state
        window = st.window[-cfg.window:]
        heldout = None
        if cfg.select_holdout > 0:
            newest_day, newest = window[-1]
            parts = self.work / f"day{newest_day}" / "selection"
            train_part, heldout = split_by_user(newest, parts / "train", parts / "heldout", cfg.select_holdout,
                                                cfg.seed + newest_day)
            window = window[:-1] + [(newest_day, train_part)]
        cands = [train_recipe(s, window, self.wdir, cfg, day=day, parent=parent, role="challenger",
                              run_id=self.run_id) for s in cfg.challengers]
        if heldout is not None:
            from training.learning import offline
            lists = {c.recipe: self.export_lists(c.version) for c in cands}
            figures = offline.score_files(lists, heldout, self.wdir, k=cfg.k,
                                          session_aware=self.policy_options(cfg.promotion_policy))
            for c in cands:
                c.metrics.update({f"heldout.{k}": v for k, v in figures[c.recipe].items()})
        chosen = select(cands, cfg)
        self.record_offline(day, cands, chosen)
        return self.served(chosen)

    def score_served(self, day: int, log: Path, layout: list[Arm], an: DayAnalysis) -> dict[str, float]:
        """The offline figures of the day's two lists on the day's own log (neither was trained
        on it), kept beside what each served under the promotion policy: across days, the
        report says which figure ranks lists as served reward does."""
        from training.learning import offline
        cfg, st = self.cfg, self.state
        lists = {role: getattr(st, role).lists for role in ("champion", "challenger")}
        figs = offline.score_files(lists, log, self.wdir, k=cfg.k,
                                   session_aware=self.policy_options(cfg.promotion_policy))
        out = {}
        for a in layout:
            if a.policy == cfg.promotion_policy and a.lists in figs and a.arm in an.arms.index:
                st.served_offline.append({"day": day, "lists": a.lists, "version": a.version,
                                          "served": float(an.arms.loc[a.arm, "mean"]), **figs[a.lists]})
                out |= {f"offline_served.{a.lists}.{k}": v for k, v in figs[a.lists].items()}
        return out

    def policy_options(self, policy: str) -> dict:
        return {k: v for k, v in self.cfg.policies[policy].items() if k != "kind"}

    # ------------------------------------------------------------------ promotion
    def move_champion(self, version: str, lists: Path, *, day: int, reason: str, expected: str | None) -> None:
        """Promote `version` the one way every job does (`training.registry.promotion.commit`): under the
        promotion lock, only if `@champion` still names `expected`, the lists deployed (when
        configured) before the alias moves, all or nothing."""
        cfg = self.cfg
        try:
            done = commit(version, cfg.register, expected, cfg.deploy or {}, {"champion": version},
                          i2i={"champion": lists})
        except Exception as e:   # deploy or alias failed: commit undid both
            raise JobError(f"day {day}: not promoted: deploying v{version} failed: {e}") from None
        if not done.promoted:
            raise JobError(f"day {day}: {done.reason}")
        if done.deployed:
            mlflow.set_tag("deployed", json.dumps(done.deployed))
        tag_version(cfg.register, version, {"promoted_on_day": day, "promoted_by_run": self.run_id})
        print(f"[promotion] `{cfg.register}` v{version} is @{tracking.CHAMPION} (day {day}: {reason[:200]})", flush=True)

    # --------------------------------------------------------------- trend, report
    def record_offline(self, day: int, cands: list[Candidate], chosen: Candidate) -> None:
        metrics = {}
        for c in cands:
            key = select_key(self.cfg)
            row = {"day": day, "candidate": c.recipe, "version": c.version, "trained_on": _span(c.trained_on),
                   "selected": c is chosen, key: c.metrics.get(key)}
            row |= {k: v for k, v in c.metrics.items() if k.startswith("heldout.") and k != key}
            row |= {f"train.{k}": c.metrics.get(k) for k in OFFLINE}
            self.state.offline.append(row)
            metrics |= {f"offline.{c.recipe}.{k}": v for k, v in c.metrics.items()
                        if (k in OFFLINE or k.startswith("heldout.")) and v is not None}
        self.log_day_metrics(day, metrics)

    def trend_metrics(self, day: int) -> dict[str, float]:
        rows = self.state.trend[-1]
        out = {}
        for _, r in rows.iterrows():
            k = metric_key(r["label"])
            out |= {f"reward.{k}": r["mean"], f"reward.{k}.lower": r["lower"], f"reward.{k}.upper": r["upper"],
                    f"headroom.{k}": r["headroom"], f"users.{k}": r["users"]}
        return out

    def trend(self) -> pd.DataFrame:
        return pd.concat(self.state.trend, ignore_index=True) if self.state and self.state.trend else \
            pd.DataFrame(columns=list(TR.TREND_COLUMNS))

    def goal_label(self) -> str:
        return f"{self.cfg.promotion_policy} × champion"

    def headline(self, failure: str | None = None) -> str:
        """The report's first line, the parent run's description."""
        cfg, st = self.cfg, self.state
        champ = st.champion
        if champ is None:
            return f"loop {cfg.days}d seed {cfg.seed} stopped before its first champion: {failure}"
        done = max(d["day"] for d in st.days)
        text = (f"{done} of {cfg.days} days: @{tracking.CHAMPION} v{champ.version} ({champ.recipe}, trained on "
                f"days {_span(champ.trained_on) or '?'}) after {st.promotions} promotion(s)")
        trend = self.trend()
        g = TR.goal_check(trend, st.refs, self.goal_label(), cfg.goal_over_anchor)
        if g["day"] is not None:
            row = trend[(trend["label"] == self.goal_label()) & (trend["day"] == g["day"])].iloc[0]
            text += (f"; day {g['day']}: {self.goal_label()} served {row['mean']:.2f} per session, "
                     f"{g['value']:.2f} of the Random→Oracle headroom")
            if "anchor_catalog" in st.refs:
                text += (f" (anchor_catalog {st.refs['anchor_catalog'].headroom_share:.2f}; goal ≥ {g['target']:.2f}: "
                         f"{'met' if g['met'] else 'not met'})")
        if failure:
            text += f"; STOPPED on day {done + 1}: {failure}"
        return text

    def write_outputs(self, failure: str | None = None) -> Path:
        """Trend plot, trend CSV and report (rewritten after each day, so a stopped loop keeps its days)."""
        cfg, st = self.cfg, self.state
        out = self.work / "report"
        trend = self.trend()
        out.mkdir(parents=True, exist_ok=True)
        trend.to_csv(out / "trend.csv", index=False)
        g = TR.goal_check(trend, st.refs, self.goal_label(), cfg.goal_over_anchor)
        plot = TR.plot_trend(trend, st.refs, out / "trend.png", goal=g["target"],
                             title=f"loop {cfg.days}d seed {cfg.seed} ({Path(cfg.world).name})")
        days = pd.DataFrame(st.days)
        offline = pd.DataFrame(st.offline)
        where = (f"on the newest day's held-out listeners ({cfg.select_holdout:.0%} of its users, left out of the "
                 f"candidates' training)" if cfg.select_holdout > 0 else "on the training run's own split")
        selection = (f"Challenger selection: every recipe ({', '.join(s.name for s in cfg.challengers)}) is trained "
                     f"on the window each day; the next day serves the one with the "
                     f"{'highest' if cfg.select_mode == 'max' else 'lowest'} `{cfg.select_metric}` {where}: "
                     f"{cfg.select_why} "
                     f"Promotion: the challenger's lists vs the champion's under {cfg.promotion_policy} (the 2x2's model "
                     f"effect) on `{cfg.promotion_metric}`, {criterion(cfg.promotion)}, sample-ratio check passing.")
        details = [
            f"World: `{cfg.world}` ({self.wdir.name}); simulator seed of day d: {cfg.seed} + d; "
            f"{cfg.cold_start_episodes} cold-start episodes, {cfg.episodes} per A/B day, over HTTP against the BentoML service",
            f"Training window: the last {cfg.window} day(s) of the service's logs; registered model `{cfg.register}`",
            f"Start: {st.start_note or '(day 0 not done)'}",
            f"A/B arms each day: C = Random (the headroom's floor), then for each policy "
            f"({', '.join(cfg.policy_names)}) the champion's lists and the challenger's: the 2x2 of policy x lists; "
            "users are re-randomised each day (the experiment's name carries the day)",
            f"Command: {self.rerun_command()}; MLflow run `{self.run_id}`",
            f"Time: {time.perf_counter() - self.t_start:.0f} s from the start to this report",
        ]
        agreement = TR.offline_agreement(pd.DataFrame(st.served_offline))
        agreement.to_csv(out / "agreement.csv", index=False)
        rep = TR.write_loop_report(out / "report.md", headline=self.headline(failure), idea=cfg.idea, details=details,
                                   trend=trend, days=days, refs=st.refs, plot=plot, goal=g, offline=offline,
                                   selection=selection, failure=failure, agreement=agreement)
        return rep

    def rerun_command(self) -> str:
        cfg = self.cfg
        args = "" if Path(cfg.config_path) == repo_path(DEFAULT_CONFIG) else f" -P config={cfg.config_path}"
        args += " -P quick=true" if cfg.quick else ""
        return f"`mlflow run . -e loop --env-manager local -P days={cfg.days} -P window={cfg.window}{args}`"

    def finish(self, failure: str | None) -> None:
        """Report, plot, trend and description, whatever happened (a failed loop keeps its days)."""
        if self.state is None:
            return
        try:
            rep = self.write_outputs(failure)
            for f in ("report.md", "trend.png", "trend.csv", "agreement.csv"):
                mlflow.log_artifact(str(rep.parent / f), "report")
            offline = pd.DataFrame(self.state.offline)
            if not offline.empty:
                offline.to_csv(rep.parent / "offline.csv", index=False)
                mlflow.log_artifact(str(rep.parent / "offline.csv"), "report")
            head = self.headline(failure)
            mlflow.set_tags({"mlflow.note.content": head, "headline": head[:5000]})
            mlflow.log_metric("total_seconds", time.perf_counter() - self.t_start)
            print(f"[loop] {head}\n[loop] report: {rep}", flush=True)
        except Exception as e:   # the report must not hide the loop's own failure
            print(f"[loop] could not write the report: {e}", file=sys.stderr, flush=True)
            if failure is None:
                raise

    def summary(self) -> dict:
        st = self.state
        return {"run_id": self.run_id, "workdir": str(self.work), "champion": st.champion.version,
                "promotions": st.promotions, "trend": self.trend(), "days": pd.DataFrame(st.days),
                "report": str(self.work / "report" / "report.md")}


def _span(days: tuple[int, ...]) -> str:
    if not days:
        return ""
    return str(days[0]) if len(days) == 1 else f"{days[0]}-{days[-1]}"


def tracking_champion(name: str) -> str | None:
    """The version `@champion` names now (None: none)."""
    try:
        return str(tracking.resolve_version(tracking.CHAMPION, name).version)
    except tracking.RegistryError:
        return None


def run_name(cfg: LoopConfig) -> str:
    return f"loop {cfg.days}d seed {cfg.seed}" + (" quick" if cfg.quick else "")


def run(cfg: LoopConfig, *, port: int = 0) -> dict:
    """The whole loop as one MLflow run (the parent of the days' runs); returns a summary."""
    tracking.setup(EXPERIMENT)
    with mlflow.start_run(run_name=run_name(cfg), tags={"botify.entry": "loop"}) as parent:
        return Loop(cfg, parent.info.run_id, port=port).run()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="the loop's YAML (training/config/loop.yml)")
    ap.add_argument("--days", type=int, default=0, help="A/B days after the cold start (0: the config's)")
    ap.add_argument("--window", type=int, default=0, help="days of logs the challengers train on (0: the config's)")
    ap.add_argument("--episodes", type=int, default=0, help="episodes per day (0: the config's)")
    ap.add_argument("--seed", type=int, default=-1, help="simulator seed of day 0 (-1: the config's)")
    ap.add_argument("--world", default="", help="simulator config of the world ('': the config's)")
    ap.add_argument("--workdir", default="", help="folder for the days' files ('': the config's, data/loop)")
    ap.add_argument("--quick", type=tracking.flag, nargs="?", const=True, default=False,
                    help="small world, small days, short training (about two minutes)")
    ap.add_argument("--port", type=int, default=0, help="service port (0: a free one each day)")
    args = ap.parse_args(argv)
    try:
        cfg = load_loop_config(args.config, quick=args.quick, days=args.days, window=args.window,
                               episodes=args.episodes, seed=args.seed, world=args.world, workdir=args.workdir)
        run(cfg, port=args.port)
    except Exception as e:  # every failure: one message, exit non-zero; a failed day promoted nothing
        if not is_job_failure(e):
            raise
        print(f"loop failed; @champion moved only by the days that completed: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from training.jobs.lifecycle import run_entry_point
    sys.exit(run_entry_point("loop", main))  # cancellable: see training/jobs/lifecycle.py
