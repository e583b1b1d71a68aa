"""The experiment's human-readable outputs: the effects table, its plot, a one-page report.

The report follows the seed's homework report (idea, details, results), so a reader of the
course finds the same page, but every figure in it is generated from the run, never typed.
Knows nothing of MLflow: it writes files; the caller logs them.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from training.ab.analysis import Analysis  # noqa: E402
from training.ab.references import Reference, headroom_share  # noqa: E402
from training.ab.users import METRICS  # noqa: E402

#: The course's table, then the careful analyst's columns.
MD_COLUMNS: tuple[str, ...] = (
    "treatment_name", "control_name", "metric", "effect", "lower", "upper", "control_mean",
    "treatment_mean", "significant", "lower_ratio", "upper_ratio", "p_value", "p_holm", "significant_holm",
    "cuped_effect", "cuped_lower", "cuped_upper", "variance_reduction", "valid",
)

#: The 2x2's readable columns (`training.ab.analysis.FACTORIAL_COLUMNS` are all in the CSV).
FACTORIAL_MD_COLUMNS: tuple[str, ...] = (
    "name", "treatment", "control", "treatment_mean", "control_mean", "effect", "lower", "upper",
    "lower_ratio", "upper_ratio", "p_value", "p_holm", "significant_holm", "valid",
)

#: How the two intervals are drawn (the plot's key says it too).
COURSE_CI = "course CI (Welch / control mean)"
RATIO_CI = "ratio CI (Fieller; interaction: delta method)"



def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (folders made) and close a figure: every plot of a run is a PNG artifact."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

def _fmt(v: object) -> str:
    v = v.item() if hasattr(v, "item") and not isinstance(v, str) else v   # numpy scalars as Python's
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.1e}"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def markdown_table(df: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table (no `tabulate` dependency)."""
    cols = [c for c in (columns or df.columns) if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in df[cols].itertuples(index=False):   # (row by row keeps each column's type: an int stays one)
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in r) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, out_dir: str | Path, stem: str = "effects") -> tuple[Path, Path]:
    """The full table as CSV (every column, for machines) and Markdown (the readable ones)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{stem}.csv", out / f"{stem}.md"
    table.to_csv(csv, index=False)
    md.write_text(markdown_table(table, MD_COLUMNS))
    return csv, md


def _errorbar(ax, y: float, effect: float, lo: float, hi: float, **kw) -> None:
    """One interval; one with an unbounded end (Fieller's, when the baseline mean is itself
    noise) is marked as such instead of silently dropped."""
    if not math.isfinite(effect) or math.isnan(lo) or math.isnan(hi):   # NaN: no such interval
        return
    if math.isinf(lo) or math.isinf(hi):
        ax.plot([effect], [y], marker="o", ls="none", color=kw.get("color"), mfc=kw.get("mfc"))
        ax.annotate("unbounded", (effect, y), textcoords="offset points", xytext=(6, -3), fontsize=7)
        return
    ax.errorbar([effect], [y], xerr=[[effect - lo], [hi - effect]], fmt="o", capsize=3, **kw)


def plot_effects(table: pd.DataFrame, path: str | Path, metrics: Iterable[str] | None = None,
                 title: str | None = None) -> Path:
    """Effects with their 95% CIs in % of the baseline, one panel per metric.

    Each row draws two intervals: the course's (Welch's interval of the difference divided
    by the control mean, thin, above) and the ratio CI that accounts for the control mean's
    uncertainty too (Fieller, thick, below), so the reader sees where they part (large
    effects over a noisy control). Filled markers are significant after Holm, hollow ones
    only raw; grey not at all, so the eye lands on what survives the correction.
    """
    metrics = list(metrics or dict.fromkeys(table["metric"]))
    n = len(metrics)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    labels = [f"{t} vs {c}" for t, c in dict.fromkeys(zip(table["treatment_name"], table["control_name"]))]
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 0.45 * len(labels) * nrows + 1.6 * nrows),
                             squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        sub = table[table["metric"] == m]
        for i, lab in enumerate(labels):
            r = sub[(sub["treatment_name"] + " vs " + sub["control_name"]) == lab]
            if r.empty:
                continue
            r = r.iloc[0]
            y = len(labels) - 1 - i
            color = "tab:green" if r["effect"] > 0 else "tab:red"
            if not r["significant"]:
                color = "tab:gray"
            face = color if r["significant_holm"] else "white"
            _errorbar(ax, y + 0.17, r["effect"], r["lower"], r["upper"], color=color, mfc=face, lw=0.9,
                      markersize=4)
            if "lower_ratio" in r.index:
                _errorbar(ax, y - 0.17, r["effect"], r["lower_ratio"], r["upper_ratio"], color=color, mfc=face,
                          lw=2.2, markersize=5)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(list(reversed(labels)), fontsize=8)
        ax.set_title(m, fontsize=10)
        ax.set_xlabel("effect, % of baseline (95% CI)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    key = (f"per row: thin above = {COURSE_CI}, thick below = {RATIO_CI}\n"
           "filled: significant after Holm; hollow: significant (raw CI) only; grey: not significant")
    fig.suptitle(f"{title}\n{key}" if title else key, fontsize=10)
    return save_figure(fig, path)


def write_factorial(table: pd.DataFrame, out_dir: str | Path, stem: str = "factorial") -> tuple[Path, Path]:
    """The 2x2's table as CSV (every column) and Markdown (the readable ones)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{stem}.csv", out / f"{stem}.md"
    table.to_csv(csv, index=False)
    md.write_text(markdown_table(table, ["metric", "family", *FACTORIAL_MD_COLUMNS]))
    return csv, md


def plot_factorial(table: pd.DataFrame, path: str | Path, metric: str, title: str | None = None) -> Path:
    """The 2x2's effects on one metric: model effects, policy effects, interaction, headline.

    Both intervals per row as in `plot_effects` (the interaction has only the ratio CI: the
    course has no method for it); a log-scaled x axis would hide the sign, so it is linear.
    """
    sub = table[table["metric"] == metric].reset_index(drop=True)
    n = len(sub)
    fig, ax = plt.subplots(figsize=(11.0, 0.6 * n + 1.8))
    for i, r in sub.iterrows():
        y = n - 1 - i
        sig = bool(r["significant_ratio"])
        color = ("tab:green" if r["effect"] > 0 else "tab:red") if sig else "tab:gray"
        face = color if bool(r["significant_holm"]) else "white"
        _errorbar(ax, y + 0.15, r["effect"], r["lower"], r["upper"], color=color, mfc=face, lw=0.9, markersize=4)
        _errorbar(ax, y - 0.15, r["effect"], r["lower_ratio"], r["upper_ratio"], color=color, mfc=face, lw=2.2,
                  markersize=5)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{r['name']}\n{r['treatment_name']} vs {r['control_name']}" for _, r in sub[::-1].iterrows()],
                       fontsize=7)
    ax.set_xlabel(f"effect on {metric}, % of baseline (95% CI)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    key = (f"thin above = {COURSE_CI}, thick below = {RATIO_CI}\n"
           "filled: significant after Holm within its family; grey: not significant")
    ax.set_title(f"{title}\n{key}" if title else key, fontsize=8, loc="left")
    return save_figure(fig, path)


def _pct(v: float) -> str:
    return "" if not math.isfinite(v) else f"{v:+.1f}%"


def _ci(lo: float, hi: float) -> str:
    if not (math.isfinite(lo) or math.isfinite(hi)):
        return "" if (isinstance(lo, float) and math.isnan(lo)) else "[unbounded]"
    return f"[{lo:+.1f}, {hi:+.1f}]"


def _effect_cell(r: pd.Series) -> str:
    """`+64.0%, course [40.1, 87.9], ratio [41.0, 90.2], Holm p = 1e-05 (yes)`."""
    parts = [_pct(r["effect"])]
    if math.isfinite(r["lower"]):
        parts.append(f"course {_ci(r['lower'], r['upper'])}")
    parts.append(f"ratio {_ci(r['lower_ratio'], r['upper_ratio'])}")
    parts.append(f"Holm p = {_fmt(float(r['p_holm']))} ({'significant' if r['significant_holm'] else 'n.s.'})")
    return ", ".join(parts)


def factorial_grid(table: pd.DataFrame, metric: str) -> str:
    """The 2x2 as a grid: cell means, the model effect per policy (rows), the policy effect
    per list level (columns), their interaction in the corner."""
    sub = table[table["metric"] == metric]
    model, policy = sub[sub["family"] == "model"], sub[sub["family"] == "policy"]
    inter = sub[sub["family"] == "interaction"]
    if len(model) != 2 or len(policy) != 2:
        return ""
    levels = list(policy["given"])
    p0, p1 = list(model["given"])
    lines = [f"| policy / lists | {levels[0]} model's lists | {levels[1]} model's lists | "
             f"model effect ({levels[1]} vs {levels[0]} lists) |", "|---|---|---|---|"]
    for _, r in model.iterrows():
        lines.append(f"| {r['given']} | {_fmt(float(r['control_mean']))} (`{r['control']}`, n = {int(r['control_n'])}) | "
                     f"{_fmt(float(r['treatment_mean']))} (`{r['treatment']}`, n = {int(r['treatment_n'])}) | "
                     f"{_effect_cell(r)} |")
    corner = (f"interaction (ratio of the model effects): {_effect_cell(inter.iloc[0])}" if len(inter) else "")
    lines.append(f"| policy effect ({p1} vs {p0}) | {_effect_cell(policy.iloc[0])} | {_effect_cell(policy.iloc[1])} | "
                 f"{corner} |")
    return "\n".join(lines) + "\n"


DEFAULT_IDEA = (
    "Raise `{metric}` (time listened per session, averaged per user) with a better next-track "
    "recommender, proven by an A/B test.")


def write_report(path: str | Path, *, table: pd.DataFrame, plot: str | Path, arms: Mapping[str, str],
                 primary_metric: str, headroom: Mapping[str, float], means: Mapping[str, float],
                 oracle_mean: float, decision: str, details: Sequence[str], srm: Mapping[str, float],
                 headline: pd.DataFrame | None = None, idea: str | None = None,
                 factorial: pd.DataFrame | None = None, factorial_plot: str | Path | None = None,
                 promotion_rule: str | None = None, capped: Mapping[str, float] | None = None,
                 oracle_capped: float | None = None, max_steps: int | None = None,
                 references: Mapping[str, tuple[float, float, float]] | None = None) -> Path:
    """The one-page report in the seed's shape: i. idea, ii. details, iii. results.

    `arms` maps arm -> recommender, `means` the primary metric per recommender, `headroom`
    the share of the Random-to-oracle gap each captures, `details` the run's facts
    (world, seeds, day sizes, model versions, commands) as bullet lines, `idea` the
    experiment's hypothesis in prose (from its config). `factorial` is the 2x2's table
    (`training.ab.analysis.factorial_table`), `promotion_rule` the rule the decision applied,
    in words; `capped` the share of each recommender's sessions the simulator's step cap
    (`max_steps`) truncated, `oracle_capped` the oracle's. `references` are the simulator's
    reference recommenders on the same sessions, name -> (mean, headroom, capped share): what a
    metadata-only rule and the ideal lists get, so a reader sees what the learned part adds.
    """
    path = Path(path)
    lines = [
        "# Botify A/B experiment report", "",
        "### i. The idea",
        idea.strip() if idea else DEFAULT_IDEA.format(metric=primary_metric),
        "",
        "### ii. Details",
        *[f"- {d}" for d in details],
        "- Arms: " + ", ".join(f"`{a}` = {r}" for a, r in arms.items()),
        f"- Sample-ratio check (chi-square): p = {_fmt(srm.get('p_value', float('nan')))} "
        f"→ {'passed' if srm.get('ok') else 'FAILED: the table is invalid'}",
        "- Method: users' events are cut into sessions at `/last`; user-level metrics; per arm the "
        "mean; each treatment vs control by Welch's t (Welch–Satterthwaite dof), effect and 95% CI in % of "
        "the control mean; significant when the CI excludes 0; Holm-adjusted p-values beside the raw ones, "
        "across every arm, contrast and metric of the table (latency rows, a guardrail, as a family of their own); CUPED with the user's day-1 value as covariate where the user has one.",
        "- Ratio CI (`lower_ratio`, `upper_ratio`) beside the course's: the course divides Welch's interval "
        "of the difference by the control mean as if that mean were exact, which is too narrow for large "
        "effects; Fieller's interval for mean_T / mean_C − 1 accounts for both means' uncertainty (asymmetric, "
        "wider upwards). Its verdict (does it exclude 0?) is Welch's; only the ends move.",
    ]
    if factorial is not None and not factorial.empty:
        lines += [
            "- 2×2 design: policy × the model whose i2i lists it serves, four arms with everything else equal. "
            "Model effect = the treatment model's lists vs the control model's under one policy; policy effect "
            "= the new policy vs the old over the same lists; interaction = (model effect under the new policy "
            "+ 1) / (model effect under the old + 1) − 1, on the relative scale (0: the two effects multiply), "
            "with a delta-method CI on the log scale from the four arms' means and variances (independent "
            "arms). Holm adjusts within each family (the two model effects; the two policy effects).",
        ]
    if capped:
        lines += [
            f"- Session cap: the simulator ends a session after {max_steps or 'max_steps'} recommended tracks "
            "(truncated, not terminated by the listener). A capped session's time is a floor of what the "
            "listener would have played: the more an arm (and the oracle) is capped, the more its mean, the "
            "ceiling and the headroom shares are the cap's, not the recommender's. The table below gives "
            "each arm's share of capped sessions.",
        ]
    lines += [
        "",
        "### iii. Results",
        f"**Decision:** {decision}", "",
    ]
    if promotion_rule:
        lines += [f"**Promotion rule:** {promotion_rule}", ""]
    if factorial is not None and not factorial.empty:
        grid = factorial_grid(factorial, primary_metric)
        prim = factorial[factorial["metric"] == primary_metric]
        lines += [f"The 2×2 on `{primary_metric}` (cell means; effects in % of the baseline with the course's "
                  "and the ratio 95% CI, Holm within the family):", "", grid,
                  "The 2×2's effects and the seed's headline contrast (which changes policy and model at once):",
                  "", markdown_table(prim, FACTORIAL_MD_COLUMNS)]
        if factorial_plot:
            lines += [f"![2x2]({Path(factorial_plot).name})", ""]
    if headline is not None and not headline.empty:
        lines += ["The same contrasts in the effects table (Holm across the whole table; CUPED):", "",
                  markdown_table(headline, MD_COLUMNS)]
    cap_col = capped is not None
    lines += [f"`{primary_metric}` per arm, and its share of the Random → oracle headroom "
              f"(oracle = {_fmt(oracle_mean)}, the simulator's best possible recommender"
              + (f", itself capped in {_fmt(float(oracle_capped))} of its sessions" if oracle_capped is not None else "")
              + "):", "",
              "| recommender | mean | headroom captured |" + (" capped sessions |" if cap_col else ""),
              "|---|---|---|" + ("---|" if cap_col else "")]
    for name, m in means.items():
        cap = f" {_fmt(float(capped.get(name, float('nan'))))} |" if cap_col else ""
        lines.append(f"| {name} | {_fmt(float(m))} | {_fmt(float(headroom.get(name, float('nan'))))} |{cap}")
    for name, (m, h, c) in (references or {}).items():
        cap = f" {_fmt(float(c))} |" if cap_col else ""
        lines.append(f"| *{name}, simulator reference* | {_fmt(float(m))} | {_fmt(float(h))} |{cap}")
    if cap_col:
        oc = _fmt(float(oracle_capped)) if oracle_capped is not None else ""
        lines.append(f"| Oracle (ceiling) | {_fmt(float(oracle_mean))} | 1.000 | {oc} |")
    lines += ["", f"![effects]({Path(plot).name})", "",
              f"Every arm against control on `{primary_metric}` (the full table is `effects.md` / `effects.csv`):",
              "", markdown_table(table[(table["metric"] == primary_metric) & (table["control"] == "C")], MD_COLUMNS)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


#: The simulator's reference recommenders the report sets beside the arms (sim.calibrate ids).
REFERENCE_LABELS = {"anchor_catalog": "anchor_catalog (anchor policy, catalog-only lists)",
                    "anchor_ideal": "anchor_ideal (anchor policy, hidden-truth lists)",
                    "contextual_ideal": "contextual_ideal (previous track, hidden-truth lists)"}


def reference_rows(an: Analysis, refs: Mapping[str, Reference]) -> dict[str, tuple[float, float, float]]:
    """label -> (mean, headroom share, capped share) of each reference, its share read on the
    day's own Random arm and Oracle, as the arms' are."""
    floor = float(an.per_arm.loc[an.design.control, "mean"])
    return {label: (r.time_per_session, float(headroom_share(r.time_per_session, floor, an.oracle)), r.capped)
            for rid, label in REFERENCE_LABELS.items() if rid in refs for r in [refs[rid]]}


def write_experiment(out: Path, an: Analysis, refs: Mapping[str, Reference], *, decision: str, details: Sequence[str],
                     idea: str | None, promotion_rule: str, max_steps: int | None) -> list[Path]:
    """Every file of the experiment's report: the tables (CSV, Markdown), their plots, the users
    and capped sessions per arm, and `report.md` (the last of the list)."""
    d, metric = an.design, an.design.metric
    csv, md = write_table(an.table, out)
    fcsv, fmd = write_factorial(an.factorial, out)
    plot = plot_effects(an.table, out / "effects.png", metrics=list(METRICS),
                        title=f"{d.experiment}: effects vs control and contrasts (95% CI)")
    fplot = plot_factorial(an.factorial, out / "factorial.png", metric,
                           title=f"{d.experiment}: the 2x2 (policy x lists) on {metric}")
    an.users.assign(arm=an.arms.reindex(an.users.index)).to_csv(out / "users.csv")
    an.capped.to_csv(out / "capped.csv")
    t = an.table
    rep = write_report(out / "report.md", table=t, plot=plot, arms=dict(d.arms), primary_metric=metric,
                       headroom=an.headroom(), means=dict(zip(an.per_arm["label"], an.per_arm["mean"])),
                       oracle_mean=an.oracle, decision=decision, details=details, srm=an.srm,
                       headline=t[(t["control"] != d.control) & (t["metric"] == metric)], idea=idea,
                       factorial=an.factorial, factorial_plot=fplot, promotion_rule=promotion_rule,
                       capped=dict(zip(an.capped["name"], an.capped["capped_share"])),
                       oracle_capped=refs["oracle"].capped if "oracle" in refs else None, max_steps=max_steps,
                       references=reference_rows(an, refs))
    return [csv, md, plot, fcsv, fmd, fplot, out / "users.csv", out / "capped.csv", rep]
