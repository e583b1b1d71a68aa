"""Entry point `loop`: the recommender improving itself, one simulated day after another.

    mlflow run . -e loop --env-manager local [-P days=7] [-P window=3] [-P quick=true]
    python -m training.jobs.loop --quick

Day 0, the cold start: the data-collection arms (Random, StickyArtist, TopPop) collect the
first logs. The first `@champion` is the registry's when it fits this world's catalog, else
the bootstrap recipe trained on day 0's log (made champion without an A/B: there is nothing
to test it against). Every later day serves Random (`C`, the headroom's floor) and, under
each of two policies, the champion's lists and the challenger's (the 2x2 of policy x lists);
the day's log joins the training window; the challenger is promoted when its model effect
under the product's policy passes `promotion` (loop.yml); tomorrow's challenger is trained
on the window. Every day's headroom is read against that day's own references.

MLflow: one parent run, a child run per day, the day's steps nested under it; metrics with
`step=day` on the parent. A failed day stops the loop; `@champion` moves only as the last act
of a day that succeeded, and the report of the days done is still written.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd
import yaml

from training.ab.analysis import analyse
from training.ab.day import References, Service, simulator_day
from training.ab.simconfig import world_dir
from training.errors import JobError
from training.jobs import lifecycle
from training.jobs.collect import collect
from training.jobs.configs import LOOP_CONFIG, LoopConfig, load_loop
from training.jobs.loop_steps import (LoopState, ab_layout, cold_start_layout, day_metrics, day_spec, design,
                                      first_champion, move_champion, next_challenger, play, record_day, rerun_command,
                                      score_served, span, trend_rows)
from training.paths import repo_path
from training.registry import tracking
from training.registry.lock import require_lock
from training.registry.promotion import criterion, decide
from training.reports import trend as TR
from training.runlog import Clock, log_metrics, log_params, log_path, mark_model_training

EXPERIMENT = "botify-loop"
#: A day's steps, in the order the report shows their seconds.
STEPS = ("play", "references", "analyse", "score", "train", "export", "select", "report", "promote")


def run(cfg: LoopConfig, *, port: int = 0) -> dict:
    """The whole loop as one MLflow run (the parent of the days' runs); returns a summary."""
    tracking.setup(EXPERIMENT)
    name = f"loop {cfg.days}d seed {cfg.seed}" + (" quick" if cfg.quick else "")
    with mlflow.start_run(run_name=name, tags={"botify.entry": "loop"}) as parent:
        mark_model_training(parent.info.experiment_id)
        world = world_dir(repo_path(cfg.world))
        st = LoopState(cfg, parent.info.run_id, repo_path(cfg.workdir) / parent.info.run_id, world, port=port)
        st.work.mkdir(parents=True, exist_ok=True)
        start(st)
        failure = None
        try:
            cold_start(st)
            for day in range(1, cfg.days + 1):
                ab_day(st, day)
        except BaseException as e:
            failure = str(e).splitlines()[0][:500] if str(e) else type(e).__name__
            mlflow.set_tags({"loop_status": "failed", "loop_failure": str(e)[:4000]})
            raise
        finally:
            if st.next_references is not None:
                st.next_references.stop()
            finish(st, failure)
        mlflow.set_tag("loop_status", "finished")
        return {"run_id": st.run_id, "workdir": str(st.work), "champion": st.champion.version,
                "promotions": st.promotions, "trend": st.trend_table(), "days": pd.DataFrame(st.days),
                "report": str(st.work / "report" / "report.md")}


def start(st: LoopState) -> None:
    """The run's params, resolved config and world."""
    cfg = st.cfg
    log_params({"config_file": cfg.path, "world_config": cfg.world, "days": cfg.days, "window": cfg.window,
                "episodes": cfg.episodes, "seed": cfg.seed, "quick": cfg.quick, "register": cfg.register,
                "cold_start_episodes": cfg.cold_start_episodes, "bootstrap": cfg.bootstrap.__dict__,
                "challengers": [c.__dict__ for c in cfg.challengers], "select_metric": cfg.select.metric,
                "policies": cfg.policies, "promotion": cfg.promotion.rule(), "alpha": cfg.analysis.alpha,
                "reference_episodes": cfg.reference_episodes})
    mlflow.set_tags({"select_metric": cfg.select.metric, "select_why": cfg.select.why, "loop_status": "running"})
    require_lock()   # the days promote: a shared registry needs a lock every machine reaches
    resolved = st.work / "loop.yml"
    resolved.write_text(yaml.safe_dump(cfg.resolved, sort_keys=False, allow_unicode=True))
    log_path(resolved, "config")
    from training.jobs.world import ensure_world
    try:
        info = ensure_world(str(repo_path(cfg.world)))
    except RuntimeError as e:
        raise JobError(f"world generation failed: {e}") from None
    log_params({f"world.{k}": v for k, v in info.items() if not k.startswith("_")})
    st.n_tracks = int(info["tracks"])


def cold_start(st: LoopState) -> None:
    """Day 0: collect the first logs, choose the first champion and tomorrow's challenger."""
    cfg = st.cfg
    st.clock = Clock()
    with tracking.step_run("day 0: cold start", entry="loop-day"):
        before = tracking.champion_version(cfg.register)
        mlflow.set_tags({"loop.day": "0", "champion_before": before or "none"})
        service = Service.from_config(cfg.cold_start_service)
        with st.clock.step("play"):
            log, _ = collect(replace(day_spec(st, 0, service, cfg.cold_start_episodes), name="day 0 (cold start)"),
                             run_name="collect day 0")
        st.clock.reassign(log.seconds["references_wait"], "play", "references")
        st.next_references = References.of(day_spec(st, 1, service, cfg.episodes)) if cfg.days else None
        st.window.append((0, log.logs))
        arms, des = cold_start_layout(service)
        with st.clock.step("analyse"):
            an = analyse(log, des)
        rows = trend_rows(0, an, arms)
        st.trend.append(rows)
        st.refs[0] = log.references
        print(f"[day 0] cold start: {len(log.events)} events from {cfg.cold_start_episodes} episodes", flush=True)

        champion, bootstrap = first_champion(st)
        challenger = next_challenger(st, 0, champion.version)
        st.days.append({"day": 0, "champion": before or "", "challenger": "", "candidate": "", "trained_on": "",
                        "promoted": bootstrap is not None, "champion_after": champion.version,
                        "seconds": st.clock.total(), "reason": st.start_note})
        if bootstrap is not None:   # the last act: the bootstrap champion (only when the registry had none)
            move_champion(st, bootstrap.version, champion.lists, day=0, reason="bootstrap", expected=before)
        st.champion, st.challenger = champion, challenger
        end_day(st, 0, day_metrics(rows, log.references) | {"champion_version": float(champion.version)}, {
            "promotion": "bootstrap" if bootstrap else "not promoted", "promotion_reason": st.start_note,
            "challenger_next": challenger.version,
            "mlflow.runName": f"day 0: cold start, v{champion.version}" + (" bootstrapped" if bootstrap else "")})
        print(f"[day 0] champion v{champion.version} ({champion.recipe}); challenger for day 1: "
              f"v{challenger.version} ({challenger.recipe}) ({st.clock.total():.0f}s)", flush=True)


def ab_day(st: LoopState, day: int) -> None:
    """Day d: the 2x2 of policy x {champion, challenger} lists beside Random, its decision,
    tomorrow's challenger, and the promotion as the day's last act."""
    cfg = st.cfg
    st.clock = Clock()
    champion, challenger = st.champion, st.challenger
    with tracking.step_run(f"day {day}", entry="loop-day"):
        mlflow.set_tags({"loop.day": str(day), "champion_before": champion.version, "challenger": challenger.version})
        now = tracking.champion_version(cfg.register)
        if now != champion.version:
            raise JobError(f"day {day}: `{cfg.register}@{tracking.CHAMPION}` is v{now}, but the loop's champion "
                           f"is v{champion.version}: another run moved it; run the loop again")
        arms, recs = ab_layout(cfg, champion, challenger)
        log = play(st, day, arms, recs)
        st.window.append((day, log.logs))
        st.refs[day] = log.references
        with st.clock.step("analyse"):
            an = analyse(log, design(arms, cfg, f"LOOP_DAY{day}"))
            promote, reason = decide(an.factorial, cfg.promotion.rule())
        rows = trend_rows(day, an, arms)
        st.trend.append(rows)
        served_figs = score_served(st, day, log, arms, an) if cfg.select.holdout > 0 else {}
        print(f"[day {day}] {len(log.events)} events; " + "; ".join(
            f"{r['label']} {r['mean']:.2f} ({r['headroom']:.2f})" for _, r in rows.iterrows()), flush=True)
        new_champion = challenger if promote else champion
        nxt = next_challenger(st, day, new_champion.version) if day < cfg.days else None
        record_day(st, day, log, an, promote, reason)
        if promote:   # the last act of a day that succeeded
            move_champion(st, challenger.version, challenger.lists, day=day, reason=reason, expected=champion.version)
            st.promotions += 1
        st.champion, st.challenger = new_champion, nxt
        verb = f"v{challenger.version} promoted" if promote else f"v{champion.version} kept"
        end_day(st, day, day_metrics(rows, log.references, an) | served_figs | {
            "events": len(log.events), "promoted": float(promote), "champion_version": float(new_champion.version)}, {
            "promotion": "promoted" if promote else "not promoted", "promotion_reason": reason,
            "challenger_next": nxt.version if nxt else "", "mlflow.runName": f"day {day}: {verb}"})
        print(f"[day {day}] {reason} ({st.clock.total():.0f}s)", flush=True)


def end_day(st: LoopState, day: int, metrics: dict, tags: dict) -> None:
    """The day's metrics (with its time per step) and tags, and the report so far."""
    with st.clock.step("report"):
        write_outputs(st, plot=False)
    st.times.append({"day": day, **{k: round(st.clock.seconds.get(k, 0.0), 1) for k in STEPS},
                     "total": round(st.clock.total(), 1)})
    log_metrics(metrics | st.clock.metrics(), step=day, parent=st.run_id)
    mlflow.set_tags(tags | {"champion_after": tracking.champion_version(st.cfg.register) or "none"})


# ----------------------------------------------------------------------------- the report

def headline(st: LoopState, failure: str | None = None) -> str:
    """The report's first line, the parent run's description."""
    cfg, champ = st.cfg, st.champion
    if champ is None:
        return f"loop {cfg.days}d seed {cfg.seed} stopped before its first champion: {failure}"
    done = max(d["day"] for d in st.days)
    text = (f"{done} of {cfg.days} days: @{tracking.CHAMPION} v{champ.version} ({champ.recipe}, trained on "
            f"days {span(champ.trained_on) or '?'}) after {st.promotions} promotion(s)")
    goal = goal_of(st)
    if goal["day"] is not None:
        text += (f"; day {goal['day']}: {goal['label']} served {goal['mean']:.2f} per session, "
                 f"{goal['value']:.2f} of the Random→Oracle headroom")
        if goal["anchor_catalog"] is not None:
            text += (f" (anchor_catalog {goal['anchor_catalog']:.2f}; goal ≥ {goal['target']:.2f}: "
                     f"{'met' if goal['met'] else 'not met'})")
    return text + (f"; STOPPED on day {done + 1}: {failure}" if failure else "")


def goal_of(st: LoopState) -> dict:
    return TR.goal_check(st.trend_table(), st.refs, f"{st.cfg.promotion.policy} × champion", st.cfg.goal_over_anchor)


def write_outputs(st: LoopState, failure: str | None = None, plot: bool = True) -> Path:
    """Trend CSV, report and (at the end) the trend plot: a stopped loop keeps its days."""
    cfg = st.cfg
    out = st.work / "report"
    out.mkdir(parents=True, exist_ok=True)
    trend = st.trend_table()
    trend.to_csv(out / "trend.csv", index=False)
    goal = goal_of(st)
    if plot:
        TR.plot_trend(trend, st.refs, out / "trend.png", goal=goal["target"],
                      title=f"loop {cfg.days}d seed {cfg.seed} ({Path(cfg.world).name})")
    where = (f"on the newest day's held-out listeners ({cfg.select.holdout:.0%} of its users, left out of the "
             f"candidates' training)" if cfg.select.holdout > 0 else "on the training run's own split")
    selection = (f"Challenger selection: every recipe ({', '.join(s.name for s in cfg.challengers)}) is trained on "
                 f"the window each day; the next day serves the one with the "
                 f"{'highest' if cfg.select.mode == 'max' else 'lowest'} `{cfg.select.metric}` {where}: "
                 f"{cfg.select.why} Promotion: the challenger's lists vs the champion's under {cfg.promotion.policy} "
                 f"(the 2x2's model effect) on `{cfg.promotion.metric}`, {criterion(cfg.promotion.rule())}, "
                 f"sample-ratio check passing.")
    details = [
        f"World: `{cfg.world}` ({st.world.name}); {cfg.cold_start_episodes} cold-start episodes, {cfg.episodes} per "
        f"A/B day, over HTTP against the BentoML service; the simulator's sessions (`training.ab.day.simulator_day`): "
        + ", ".join(f"day {d} `--seed {s.seed} --day {s.day}`" for d in range(cfg.days + 1)
                    for s in [simulator_day(cfg.seed, d + 1)]),
        f"References: each day's own (`python -m sim.calibrate` on the day's first {cfg.reference_episodes} sessions)",
        f"Training window: the last {cfg.window} day(s) of the service's logs; registered model `{cfg.register}`",
        f"Start: {st.start_note or '(day 0 not done)'}",
        f"A/B arms each day: C = Random (the headroom's floor), then for each policy ({', '.join(cfg.policy_names)}) "
        "the champion's lists and the challenger's: the 2x2 of policy x lists; users are re-randomised each day",
        f"Command: {rerun_command(cfg)}; MLflow run `{st.run_id}`",
    ]
    agreement = TR.offline_agreement(pd.DataFrame(st.served_offline))
    agreement.to_csv(out / "agreement.csv", index=False)
    offline = pd.DataFrame(st.offline)
    offline.to_csv(out / "offline.csv", index=False)
    return TR.write_loop_report(out / "report.md", headline=headline(st, failure), idea=cfg.idea, details=details,
                                trend=trend, days=pd.DataFrame(st.days), refs=st.refs, plot=out / "trend.png",
                                goal=goal, offline=offline, selection=selection, failure=failure,
                                agreement=agreement, times=pd.DataFrame(st.times))


def finish(st: LoopState, failure: str | None) -> None:
    """Report, plot, trend and description, whatever happened (a failed loop keeps its days)."""
    try:
        rep = write_outputs(st, failure)
        for f in ("report.md", "trend.png", "trend.csv", "agreement.csv", "offline.csv"):
            log_path(rep.parent / f, "report")
        head = headline(st, failure)
        mlflow.set_tags({"mlflow.note.content": head, "headline": head[:5000]})
        mlflow.log_metric("total_seconds", time.perf_counter() - st.started)
        print(f"[loop] {head}\n[loop] report: {rep}", flush=True)
    except Exception as e:   # the report must not hide the loop's own failure
        print(f"[loop] could not write the report: {e}", file=sys.stderr, flush=True)
        if failure is None:
            raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=LOOP_CONFIG, help="the loop's YAML (training/config/loop.yml)")
    ap.add_argument("--days", type=int, default=0, help="A/B days after the cold start (0: the config's)")
    ap.add_argument("--window", type=int, default=0, help="days of logs the challengers train on (0: the config's)")
    ap.add_argument("--episodes", type=int, default=0, help="episodes per day (0: the config's)")
    ap.add_argument("--seed", type=int, default=-1, help="the job's simulator seed (-1: the config's)")
    ap.add_argument("--world", default="", help="simulator config of the world ('': the config's)")
    ap.add_argument("--workdir", default="", help="folder for the days' files ('': the config's, data/loop)")
    ap.add_argument("--quick", type=tracking.flag, nargs="?", const=True, default=False,
                    help="small world, small days, short training (about two minutes)")
    ap.add_argument("--port", type=int, default=0, help="service port (0: a free one each day)")
    args = ap.parse_args(argv)
    return lifecycle.one_line_failure("loop failed; @champion moved only by the days that completed", lambda: run(
        load_loop(args.config, quick=args.quick, days=args.days or None, window=args.window or None,
                  episodes=args.episodes or None, seed=None if args.seed < 0 else args.seed,
                  world=args.world or None, workdir=args.workdir or None), port=args.port))


if __name__ == "__main__":
    sys.exit(lifecycle.run_entry_point("loop", main))  # cancellable: see training/jobs/lifecycle.py
