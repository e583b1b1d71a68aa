"""The loop's human-readable outputs: the trend table, the trend plot and the report.

The trend is one row per (day, arm): what that arm served (mean time per session, user
level, with its 95% CI) and the share of the day's Random -> Oracle headroom it captured,
beside each day's references (`anchor_catalog`, `anchor_ideal`, on the day's own sessions),
so a rise is read against what a metadata-only rule and the ideal lists reach that day.
Knows nothing of MLflow: it writes files; the loop logs them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from training.ab.references import LINES, Reference  # noqa: E402
from training.reports.report import _fmt, markdown_table, save_figure  # noqa: E402

#: Columns of the trend table, in order.
TREND_COLUMNS: tuple[str, ...] = ("day", "arm", "label", "policy", "lists", "version", "users", "mean",
                                  "lower", "upper", "headroom", "headroom_lower", "headroom_upper")
#: Columns of the per-day decisions table.
DAY_COLUMNS: tuple[str, ...] = ("day", "champion", "challenger", "candidate", "trained_on", "model_effect",
                                "model_lower", "model_upper", "model_p_holm", "promoted", "champion_after",
                                "seconds")


def _series(trend: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(trend.sort_values(["day", "arm"])["label"]))


def plot_trend(trend: pd.DataFrame, refs: Mapping[int, Mapping[str, Reference]], path: str | Path, *,
               goal: float | None = None, title: str = "") -> Path:
    """Served reward (mean time per session, 95% CI) and headroom share by day, one line per
    arm, with each day's references as dashed lines (and the goal on the headroom panel)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8.5), sharex=True)
    cmap = plt.get_cmap("tab10")
    labels = _series(trend)
    for i, label in enumerate(labels):
        s = trend[trend["label"] == label].sort_values("day")
        s = s.assign(day=s["day"] + 0.04 * (i - (len(labels) - 1) / 2))   # side by side, not on top
        style = dict(color=cmap(i % 10), marker="o", capsize=3, lw=1.6 if "champion" in label else 1.1,
                     ls="-" if "champion" in label or s["day"].nunique() > 1 else "none")
        top.errorbar(s["day"], s["mean"], yerr=[s["mean"] - s["lower"], s["upper"] - s["mean"]], label=label, **style)
        bottom.errorbar(s["day"], s["headroom"], yerr=[s["headroom"] - s["headroom_lower"],
                                                       s["headroom_upper"] - s["headroom"]], label=label, **style)
    days = sorted(refs)
    for rid, name in (("oracle", "Oracle"), *LINES.items()):
        have = [d for d in days if rid in refs[d]]
        if not have:
            continue
        style = dict(color="gray" if rid == "oracle" else "black", ls=":" if rid == "oracle" else "--", lw=0.9)
        top.plot(have, [refs[d][rid].time_per_session for d in have], **style)
        top.annotate(f"{name} {refs[have[-1]][rid].time_per_session:.2f}", (have[-1], refs[have[-1]][rid].time_per_session),
                     fontsize=7, ha="right", va="bottom")
        if rid in LINES:
            bottom.plot(have, [refs[d][rid].headroom_share for d in have], **style)
            bottom.annotate(f"{name} {refs[have[-1]][rid].headroom_share:.2f}",
                            (have[-1], refs[have[-1]][rid].headroom_share), fontsize=7, ha="right", va="bottom")
    if goal is not None and np.isfinite(goal):
        bottom.axhline(goal, color="tab:green", ls="-.", lw=1.0)
        bottom.annotate(f"goal {goal:.2f}", (0.0, goal), xycoords=("axes fraction", "data"), fontsize=7,
                        ha="left", va="bottom", color="tab:green")
    top.set_ylabel("served reward: mean time per session")
    bottom.set_ylabel("share of Random → Oracle headroom")
    bottom.set_xlabel("day (0: cold start)")
    bottom.set_xticks(sorted(trend["day"].unique()))
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    top.legend(fontsize=7, loc="upper left", ncol=2)
    fig.suptitle(title or "The loop: served reward and headroom by day (95% CI)", fontsize=10)
    return save_figure(fig, path)


def trend_markdown(trend: pd.DataFrame) -> str:
    """Day x arm: mean [CI] and headroom share, one column per arm label."""
    labels = _series(trend)
    lines = ["| day | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for day, g in trend.groupby("day"):
        cells = []
        for lab in labels:
            r = g[g["label"] == lab]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            v = f" v{r['version']}" if isinstance(r["version"], str) and r["version"] else ""
            cells.append(f"{r['mean']:.2f} [{r['lower']:.2f}, {r['upper']:.2f}] · {r['headroom']:.2f}{v}")
        lines.append(f"| {day} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def goal_check(trend: pd.DataFrame, refs: Mapping[int, Mapping[str, Reference]], label: str, over: float) -> dict:
    """The goal: on the last day, `label` captures >= that day's anchor_catalog + `over` of the headroom."""
    last = trend[trend["label"] == label].sort_values("day")
    out = {"label": label, "target": float("nan"), "value": float("nan"), "mean": float("nan"), "met": False,
           "day": None, "anchor_catalog": None}
    if last.empty:
        return out
    r = last.iloc[-1]
    anchor = (refs.get(int(r["day"])) or {}).get("anchor_catalog")
    target = anchor.headroom_share + over if anchor is not None else float("nan")
    return {**out, "target": target, "value": float(r["headroom"]), "mean": float(r["mean"]), "day": int(r["day"]),
            "anchor_catalog": anchor.headroom_share if anchor is not None else None,
            "met": bool(np.isfinite(target) and r["headroom"] >= target)}


def offline_agreement(served: pd.DataFrame) -> pd.DataFrame:
    """Per offline figure: how well it tracks served reward over the days' served lists.

    `served` has one row per (day, lists) with `served` (the mean time per session the lists
    gave under the promotion policy) and the lists' offline figures on that day's log. Per
    figure: Spearman's rank correlation over every (day, lists) point, and the share of days on
    which the figure orders the challenger and the champion as their served reward does.
    """
    if served is None or served.empty:
        return pd.DataFrame(columns=["figure", "points", "spearman", "days", "same_order"])
    skip = {"day", "lists", "version", "served"}
    # counts that say how much a figure rests on (SNIPS's effective sample size, its events and
    # matches), not how good a list is
    diagnostic = ("_ess", "_events", "_matches")
    rows = []
    for fig in [c for c in served.columns if c not in skip and not c.endswith(diagnostic)]:
        pts = served[["day", "lists", "served", fig]].dropna()
        if len(pts) < 2 or pts[fig].nunique() < 2:
            continue
        rho = float(stats.spearmanr(pts[fig], pts["served"]).statistic) if len(pts) >= 3 else float("nan")
        pairs = pts.pivot(index="day", columns="lists", values=[fig, "served"]).dropna()
        same = [np.sign(r[(fig, "challenger")] - r[(fig, "champion")]) ==
                np.sign(r[("served", "challenger")] - r[("served", "champion")]) for _, r in pairs.iterrows()] \
            if {"challenger", "champion"} <= set(pts["lists"]) else []
        rows.append({"figure": fig, "points": len(pts), "spearman": rho, "days": len(same),
                     "same_order": float(np.mean(same)) if same else float("nan")})
    return pd.DataFrame(rows).sort_values("spearman", ascending=False, na_position="last").reset_index(drop=True)


def write_loop_report(path: str | Path, *, headline: str, idea: str, details: Sequence[str],
                      trend: pd.DataFrame, days: pd.DataFrame, refs: Mapping[int, Mapping[str, Reference]],
                      plot: str | Path, goal: Mapping, offline: pd.DataFrame | None, selection: str,
                      failure: str | None = None, agreement: pd.DataFrame | None = None,
                      times: pd.DataFrame | None = None) -> Path:
    """The loop's one-page report: headline, idea, details, trend (plot + table), each day's
    references, the goal, every day's decision, the challengers' offline figures, the time
    each step of each day took."""
    path = Path(path)
    lines = ["# Botify loop report", "", f"**{headline}**", ""]
    if failure:
        lines += [f"> **The loop stopped:** {failure}", ""]
    lines += ["### i. The idea", idea or "", "", "### ii. Details", *[f"- {d}" for d in details], "",
              "### iii. The trend", "", f"![trend]({Path(plot).name})", "",
              "Served reward per arm (mean time per session, user level, [95% CI]) · share of the "
              "Random → Oracle headroom (floor: the day's Random arm; ceiling: the day's own Oracle); "
              "vN: the model version whose lists the arm served:", "", trend_markdown(trend)]
    ids = list(dict.fromkeys(rid for d in sorted(refs) for rid in refs[d]))
    lines += ["References (`python -m sim.calibrate` on each day's first sessions; the simulator's own "
              "policies, never served): time per session · headroom share", "",
              "| day | " + " | ".join(ids) + " |", "|---|" + "---|" * len(ids)]
    for d in sorted(refs):
        lines.append(f"| {d} | " + " | ".join(f"{refs[d][i].time_per_session:.2f} · {refs[d][i].headroom_share:.2f}"
                                            if i in refs[d] else "" for i in ids) + " |")
    tgt = goal.get("target", float("nan"))
    lines += ["", f"Goal: {goal['label']} captures at least anchor_catalog + margin = {_fmt(float(tgt))} of the "
              f"headroom on the last day: day {goal.get('day')} {_fmt(float(goal['value']))} → "
              f"**{'met' if goal['met'] else 'not met'}**.", "",
              "### iv. Every day's decision", "", selection, "",
              markdown_table(days, [c for c in DAY_COLUMNS if c in days.columns] + ["reason"])]
    if offline is not None and not offline.empty:
        lines += ["### v. The candidates' offline figures", "",
                  "`heldout.*`: the candidate's lists scored by `training.learning.offline` on the sessions of the newest "
                  "day's held-out listeners (never trained on); `train.*`: the training run's own split of pairs.", "",
                  markdown_table(offline)]
    if agreement is not None and not agreement.empty:
        lines += ["### vi. Which offline figure tracks served reward", "",
                  "Each A/B day, the champion's and the challenger's lists are scored offline on that day's log "
                  "(neither was trained on it) beside what they served under the promotion policy. `spearman`: rank "
                  "correlation over every (day, lists) point; `same_order`: share of days on which the figure "
                  "orders challenger and champion as served reward does.", "", markdown_table(agreement)]
    if times is not None and not times.empty:
        lines += ["### vii. A day's time, step by step", "",
                  "Seconds per step (`seconds.<step>` in each day's metrics): play (the service and the simulator), "
                  "references (waiting for them after the play), analyse, score (the served lists offline), "
                  "train, export, select, report, promote; `total` the day's wall time.", "",
                  markdown_table(times.astype({"day": int}))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
