"""Entry point `experiment`: the honest A/B test, from a clean clone to a promoted model.

    mlflow run . -e experiment --env-manager local [-P quick=true] [-P in_process=true]
    python -m training.jobs.experiment --quick

Day 1 (the cold start's arms) collects logs; the course's control model and the seed's
treatment are trained on them, registered and exported to i2i lists; day 2 serves the A/B
arms (the 2x2 of policy x lists beside Random, StickyArtist, TopPop) with the simulator's
references on the same sessions; the analysis, the report and the promotion follow, all in
one MLflow run. What is promoted is a model, so the decision is the model effect under the
policy the product serves (`promotion`, experiment.yml). Any failure stops the run with a
message saying what and what to do, promotes nothing and leaves no process behind.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import pandas as pd
import yaml

from training.ab.analysis import Analysis, analyse
from training.ab.day import DayLog, DaySpec, References, Service, play_day, simulator_day
from training.ab.simconfig import session_cap, world_dir
from training.ab.users import user_metrics
from training.errors import JobError
from training.jobs import lifecycle
from training.jobs.challengers import train_recipe
from training.jobs.collect import collect
from training.jobs.configs import EXPERIMENT_CONFIG, ExperimentConfig, ModelSpec, load_experiment
from training.paths import repo_path
from training.registry import promotion, tracking
from training.registry.lock import require_lock
from training.reports import report as R
from training.runlog import Clock, log_metrics, log_params, log_path, mark_model_training

EXPERIMENT = "botify-experiment"


@dataclass
class Model:
    role: str
    version: str
    run_id: str
    i2i: Path


def train_model(role: str, spec: ModelSpec, logs: list[Path], world: Path, out: Path, cfg: ExperimentConfig) -> Model:
    """Train and register one model (or reuse a registered one, `ref:`), then export its i2i
    lists (each step a child run). A missing `ref` fails with the versions and aliases that exist."""
    from training.registry.export import export
    if spec.ref:
        version = str(tracking.resolve_version(spec.ref, cfg.register).version)
    else:
        version = str(train_recipe(spec, logs, world, register=cfg.register, seed=cfg.seed, run_name=f"train-{role}",
                                   what=f"the {role} model").version)
    summary = export(version, out / f"i2i-{role}.jsonl", k=cfg.k, name=cfg.register)
    return Model(role, version, summary["source_run_id"], Path(summary["output"]))


def run(cfg: ExperimentConfig, *, in_process: bool = False, port: int = 0) -> dict:
    """The whole experiment as one MLflow run (the parent of its steps' runs); returns a summary.

    The run is the one `mlflow run` created (MLFLOW_RUN_ID) or a new one; it ends FINISHED
    only when every step, the analysis and the promotion decision succeeded.
    """
    tracking.setup(EXPERIMENT)
    with mlflow.start_run(run_name="experiment", tags={"botify.entry": "experiment"}) as parent:
        mlflow.set_tag("botify.entry", "experiment")
        mark_model_training(parent.info.experiment_id)
        try:
            return _pipeline(cfg, parent.info.run_id, in_process=in_process, port=port)
        except BaseException as e:
            # (a cancel that lands after a committed promotion must not relabel it)
            if mlflow.get_run(parent.info.run_id).data.tags.get("promotion") != "promoted":
                how = "stopped" if isinstance(e, lifecycle.Cancelled) else "failed"
                mlflow.set_tags({"promotion": "not promoted", "promotion_reason": f"run {how}: {str(e)[:4000]}"})
            raise


def _pipeline(cfg: ExperimentConfig, run_id: str, *, in_process: bool, port: int) -> dict:
    clock = Clock()
    work = repo_path(cfg.workdir) / run_id
    work.mkdir(parents=True, exist_ok=True)
    rerun = rerun_command(cfg, in_process)
    sims = {n: simulator_day(cfg.seed, n) for n in (1, 2)}   # the job's days 1 and 2: the seed rule
    # (names apart from the entry point's own parameters, which `mlflow run` logs as given)
    log_params({"config_file": cfg.path, "world_config": cfg.world, "quick_mode": cfg.quick,
                **{f"day{n}.simulator": str(s) for n, s in sims.items()},
                "episodes_day1": cfg.collect_episodes, "episodes_day2": cfg.ab_episodes,
                "transport": "in-process" if in_process else "http", "service_seed": cfg.service_seed,
                "ab_experiment": cfg.design.experiment, **{f"arm.{a}": r for a, r in cfg.arms.items()},
                "contrasts": json.dumps(cfg.design.contrasts), "headline": json.dumps(cfg.design.headline),
                "factorial": json.dumps(cfg.design.factorial), "promotion": json.dumps(cfg.promotion.__dict__),
                "alpha": cfg.analysis.alpha, "srm_alpha": cfg.analysis.srm_alpha,
                "model.registered_name": cfg.register,
                **{f"model.{r}": json.dumps(m.__dict__) for r, m in cfg.models.items()}})
    # what `@champion` names now: the promotion only replaces this (see promotion.commit); and
    # whether it can be locked at all (a shared registry needs a lock every machine reaches)
    champion_at_start = tracking.champion_version(cfg.register)
    require_lock()
    log_params({"champion_at_start": champion_at_start or "none"})
    mlflow.set_tag("promotion", "pending")
    (work / "experiment.yml").write_text(yaml.safe_dump(cfg.resolved, sort_keys=False))
    log_path(work / "experiment.yml", "config")

    from training.jobs.world import ensure_world
    try:
        info = ensure_world(str(repo_path(cfg.world)))
    except RuntimeError as e:
        raise JobError(f"world generation failed: {e}") from None
    log_params({f"world.{k}": v for k, v in info.items() if not k.startswith("_")})
    wdir = world_dir(repo_path(cfg.world))

    with clock.step("day1"):   # the cold start's arms (the `collect` step, a child run)
        day1, _ = collect(DaySpec("day 1 (collect)", work / "day1", cfg.world, cfg.seed, 1, cfg.collect_episodes,
                                  Service.from_config(cfg.collect_service), in_process=in_process,
                                  rerun=f"the experiment, {rerun}"), run_name="collect-day1")
    print(f"[day1] {len(day1.events)} events from {cfg.collect_episodes} episodes", flush=True)

    spec2 = DaySpec("day 2", work / "day2", cfg.world, cfg.seed, 2, cfg.ab_episodes, Service({}, []),
                    in_process=in_process, port=port, references=cfg.ab_episodes, rerun=f"the experiment, {rerun}")
    refs2 = References.of(spec2)   # day 2's references on its sessions, beside the training and the day
    try:
        with clock.step("train"):
            models = {role: train_model(role, cfg.models[role], [day1.logs], wdir, work, cfg) for role in cfg.models}
        log_params({f"model.{m.role}.version": m.version for m in models.values()}
                   | {f"model.{m.role}.run_id": m.run_id for m in models.values()})
        log_path(models["treatment"].i2i, "i2i")
        print(f"[models] control v{models['control'].version}, treatment v{models['treatment'].version}", flush=True)
        fill = {"control_i2i": str(models["control"].i2i), "treatment_i2i": str(models["treatment"].i2i),
                "collect_log": str(day1.logs)}
        recs = {name: {k: (v.format(**fill) if isinstance(v, str) else v) for k, v in spec.items()}
                for name, spec in cfg.recommenders.items()}
        with clock.step("day2"):   # the A/B day
            day2 = play_day(replace(spec2, service=Service(recs, [{"name": cfg.design.experiment,
                                                                  "arms": dict(cfg.arms)}], cfg.service_seed)), refs2)
        clock.reassign(day2.seconds["references_wait"], "day2", "references")
    finally:
        refs2.stop()
    print(f"[day2] {len(day2.events)} events from {cfg.ab_episodes} episodes; "
          f"oracle {day2.references['oracle'].time_per_session:.3f}", flush=True)

    with clock.step("analyse"):
        an = analyse(day2, cfg.design, covariates=user_metrics(day1.events))
        ok, reason = promotion.decide(an.factorial, cfg.promotion.rule())
    treatment = models["treatment"].version
    decision = (f"promoted `{cfg.register}` version {treatment} (treatment) to `@{tracking.CHAMPION}`, {reason}"
                if ok else f"{reason}; `@{tracking.CHAMPION}` unchanged")
    details = [
        f"World: `{cfg.world}` ({wdir.name}); the simulator's sessions: day 1 `{sims[1]}`, day 2 and its "
        f"references `{sims[2]}` (`training.ab.day.simulator_day`); a session is capped at "
        f"{session_cap(repo_path(cfg.world))} recommended tracks",
        f"Day 1 (cold start, `collect`): {cfg.collect_episodes} episodes, arms "
        f"{day1.spec.service.experiments[0]['arms']}; {len(day1.events)} events",
        f"Day 2 (A/B): {cfg.ab_episodes} episodes "
        + ("in-process" if in_process else "over HTTP against the BentoML service")
        + f"; {len(day2.events)} events, {len(an.users)} users",
        f"Control model: `{cfg.register}` v{models['control'].version} ({model_summary(cfg.models['control'])}); "
        f"treatment model: v{treatment} ({model_summary(cfg.models['treatment'])})",
        f"Command: {rerun}; MLflow run `{run_id}`",
    ]

    def write_report(decision: str) -> list[Path]:
        return R.write_experiment(work / "report", an, day2.references, decision=decision, details=details,
                                  idea=cfg.idea, promotion_rule=promotion.rule(cfg.promotion.rule()),
                                  max_steps=session_cap(repo_path(cfg.world)))

    with clock.step("report"):
        files = write_report(decision)
        log_metrics(experiment_metrics(an, day1, day2) | clock.metrics())
        mlflow.log_table(an.table, "effects.json")
        mlflow.log_table(an.factorial, "factorial.json")
        for f in files:
            log_path(f, "report")
        for f, where in ((day2.logs, "event_log"), (day2.service_config, "config"),
                         (day2.spec.folder / "references", "references"), (day2.spec.folder / "episodes.csv", "day2")):
            log_path(f, where)

    # the last step, only reached when everything above succeeded: under the promotion lock,
    # only if `@champion` has not moved since the run started, the export first and the alias
    # last (all or nothing), never once the run is cancelled
    deploy, control = cfg.promotion.deploy or {}, models["control"]
    if ok:
        def record(done: promotion.Commit) -> None:   # inside the commit: a cancel cannot split them
            mlflow.set_tags({"promotion": "promoted", "promoted_version": treatment, "promotion_reason": decision,
                             "deployed": json.dumps(done.deployed)})

        with clock.step("promote"):
            done = promotion.commit(treatment, cfg.register, champion_at_start, deploy,
                                    {"champion": treatment, "baseline": control.version},
                                    i2i={"champion": models["treatment"].i2i, "baseline": control.i2i}, record=record)
        if not done.promoted:   # the table said yes, the registry moved meanwhile (or a cancel came): say so
            ok, decision = False, f"{done.reason} (the table alone: {reason}); `@{tracking.CHAMPION}` unchanged"
            log_path(write_report(decision)[-1], "report")
    if not ok and champion_at_start is None:   # no champion yet: the status quo it was tested against becomes one
        with clock.step("promote"):
            boot = promotion.bootstrap(control.version, cfg.register, deploy, control.i2i,
                                       record=lambda done: mlflow.set_tags({"champion_bootstrap": control.version,
                                                                            "deployed": json.dumps(done.deployed)}))
        if boot.promoted:
            decision = (f"{reason}; the registry had no `@{tracking.CHAMPION}`, so the control (baseline) model, "
                        f"version {control.version}, became the first one")
            log_path(write_report(decision)[-1], "report")
    if not ok:
        mlflow.set_tag("promotion", "not promoted")
    mlflow.set_tags({"promotion_reason": decision, "promotion_rule": promotion.rule(cfg.promotion.rule())})
    log_metrics(clock.metrics())
    print_summary(an, day2, decision, promotion.rule(cfg.promotion.rule()))
    print(f"[done] {clock.total():.0f}s, run {run_id}; report: {files[-1]}", flush=True)
    return {"run_id": run_id, "workdir": str(work), "table": an.table, "factorial": an.factorial,
            "capped": an.capped, "promoted": ok, "decision": decision, "headroom": an.headroom(),
            "oracle": an.oracle, "timings": dict(clock.seconds), "report": files[-1],
            "versions": {r: m.version for r, m in models.items()}}


def experiment_metrics(an: Analysis, day1: DayLog, day2: DayLog) -> dict[str, float]:
    """The run's metrics: every row of both tables (`<row>.<metric>.<stat>`), users per arm,
    the Oracle, the references, headroom and capped shares, SRM."""
    refs = day2.references
    counts = an.arms.value_counts()
    return {**table_metrics(an.table), **factorial_metrics(an.factorial),
            **{f"users.{a}": float(counts.get(a, 0)) for a in an.design.arms},
            f"oracle.{an.design.metric}": an.oracle, "oracle.capped_share": refs["oracle"].capped,
            **{f"reference.{rid}.mean_time_per_session": refs[rid].time_per_session for rid in R.REFERENCE_LABELS
               if rid in refs},
            **{f"reference.{rid}.headroom": R.reference_rows(an, refs)[label][1]
               for rid, label in R.REFERENCE_LABELS.items() if rid in refs},
            **{f"headroom.{name}": v for name, v in an.headroom().items()},
            **{f"capped_share.{a}_{r['name']}": r["capped_share"] for a, r in an.capped.iterrows()},
            "srm_p_value": an.srm["p_value"], "srm_ok": float(an.srm["ok"]),
            "events_day1": len(day1.events), "events_day2": len(day2.events), "users_day2": len(an.users),
            "covered_by_day1": float(an.users.index.isin(day1.events["user"]).mean())}


def _row_metrics(table: pd.DataFrame, row_name, stats: tuple[str, ...], flags: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for _, r in table.iterrows():
        row = row_name(r)
        out |= {f"{row}.{r['metric']}.{s}": r[s] for s in stats}
        out |= {f"{row}.{r['metric']}.{f}": float(bool(r[f])) for f in flags}
    return out


def table_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Per row of the effects table, `<row>.<metric>.<stat>`: row `<arm>_<label>` against C,
    `<arm>_vs_<arm>` for a contrast; `lower`/`upper` the course's CI, `*_ratio` Fieller's."""
    return _row_metrics(table, lambda r: (f"{r['treatment']}_{r['treatment_name']}" if r["control"] == "C"
                                          else f"{r['treatment']}_vs_{r['control']}"),
                        ("effect", "lower", "upper", "lower_ratio", "upper_ratio", "p_value", "p_holm",
                         "treatment_mean", "control_mean", "cuped_effect", "cuped_lower", "cuped_upper",
                         "variance_reduction"), ("significant", "significant_ratio", "significant_holm"))


def factorial_metrics(factorial: pd.DataFrame) -> dict[str, float]:
    """Per row of the 2x2: `2x2_<family>[_<given>].<metric>.<stat>`, e.g.
    `2x2_model_SessionAware.mean_time_per_session.effect`."""
    return _row_metrics(factorial, lambda r: f"2x2_{r['family']}" + (f"_{r['given']}" if r["given"] else ""),
                        ("effect", "lower", "upper", "lower_ratio", "upper_ratio", "p_value", "p_holm",
                         "treatment_mean", "control_mean"), ("significant_ratio", "significant_holm"))


def print_summary(an: Analysis, day2: DayLog, decision: str, rule: str) -> None:
    m, t = an.design.metric, an.table
    print(R.markdown_table(t[(t["metric"] == m) & (t["control"] == "C")],
                           ["treatment_name", "effect", "lower", "upper", "lower_ratio", "upper_ratio",
                            "control_mean", "treatment_mean", "significant", "p_holm", "significant_holm"]))
    print(R.factorial_grid(an.factorial, m))
    print(R.markdown_table(an.factorial[an.factorial["metric"] == m],
                           ["name", "treatment", "control", "effect", "lower", "upper", "lower_ratio", "upper_ratio",
                            "p_value", "p_holm", "significant_holm"]))
    print("headroom captured (arm - Random) / (oracle - Random): "
          + ", ".join(f"{n} {v:.2f}" for n, v in an.headroom().items()) + f"; oracle {an.oracle:.3f}")
    print("references on the same sessions (simulator): "
          + ", ".join(f"{n} {v[1]:.2f}" for n, v in R.reference_rows(an, day2.references).items()))
    print("capped sessions: " + ", ".join(f"{r['name']} {r['capped_share']:.2f}" for _, r in an.capped.iterrows())
          + f"; oracle {day2.references['oracle'].capped:.2f}")
    print(f"[promotion rule] {rule}")
    print(f"[promotion] {decision}")


def rerun_command(cfg: ExperimentConfig, in_process: bool) -> str:
    """The command that runs this experiment again, for the report and for error messages."""
    args = "" if Path(cfg.path) == repo_path(EXPERIMENT_CONFIG) else f" -P arms={cfg.path}"
    args += (" -P quick=true" if cfg.quick else "") + (" -P in_process=true" if in_process else "")
    return f"`mlflow run . -e experiment --env-manager local{args}`"


def model_summary(spec: ModelSpec) -> str:
    """The few hyper-parameters a reader compares between the two models."""
    if spec.ref:
        return f"reused registered `{spec.ref}`"
    c = spec.train_config(0)
    return (f"`{spec.config}`: embedding_dim {c.embedding_dim}, split {c.split}, context {c.context}, "
            f"objective {c.objective}, catalog features {'on' if c.features else 'off'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", "--config", dest="config", default=EXPERIMENT_CONFIG,
                    help="the experiment's YAML: arms, days, models, promotion rule")
    ap.add_argument("--episodes", type=int, default=0, help="episodes per day (0: the config's)")
    ap.add_argument("--seed", type=int, default=-1, help="the job's simulator seed (-1: the config's)")
    ap.add_argument("--world", default="", help="simulator config of the world ('': the config's)")
    ap.add_argument("--quick", type=tracking.flag, nargs="?", const=True, default=False,
                    help="small world, small days, short training (about a minute)")
    ap.add_argument("--in-process", type=tracking.flag, nargs="?", const=True, default=False,
                    help="play through the in-process agent instead of HTTP")
    ap.add_argument("--port", type=int, default=0, help="service port (0: a free one)")
    args = ap.parse_args(argv)
    return lifecycle.one_line_failure("experiment failed, nothing promoted", lambda: run(
        load_experiment(args.config, quick=args.quick, episodes=args.episodes or None,
                        seed=None if args.seed < 0 else args.seed, world=args.world or None),
        in_process=args.in_process, port=args.port))


if __name__ == "__main__":
    # a cancel stops the service and the simulator, marks the run KILLED, promotes nothing
    sys.exit(lifecycle.run_entry_point("experiment", main))
