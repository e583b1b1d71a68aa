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

#: The course's table, then the careful analyst's columns.
MD_COLUMNS: tuple[str, ...] = (
    "treatment_name", "control_name", "metric", "effect", "lower", "upper", "control_mean",
    "treatment_mean", "significant", "p_value", "p_holm", "significant_holm",
    "cuped_effect", "cuped_lower", "cuped_upper", "variance_reduction", "valid",
)


def _fmt(v: object) -> str:
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
    for _, r in df[cols].iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, out_dir: str | Path, stem: str = "effects") -> tuple[Path, Path]:
    """The full table as CSV (every column, for machines) and Markdown (the readable ones)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{stem}.csv", out / f"{stem}.md"
    table.to_csv(csv, index=False)
    md.write_text(markdown_table(table, MD_COLUMNS))
    return csv, md


def plot_effects(table: pd.DataFrame, path: str | Path, metrics: Iterable[str] | None = None,
                 title: str | None = None) -> Path:
    """Effects with their 95% CIs in % of the baseline, one panel per metric.

    Filled markers are significant after Holm, hollow ones only raw; grey not at all, so
    the eye lands on what survives the multiple-comparison correction.
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
            lo, hi = r["lower"], r["upper"]
            ax.errorbar([r["effect"]], [y], xerr=[[r["effect"] - lo], [hi - r["effect"]]], fmt="o",
                        color=color, mfc=face, capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(list(reversed(labels)), fontsize=8)
        ax.set_title(m, fontsize=10)
        ax.set_xlabel("effect, % of baseline (95% CI)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    key = "filled: significant after Holm; hollow: significant (raw CI) only; grey: not significant"
    fig.suptitle(f"{title}\n{key}" if title else key, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


DEFAULT_IDEA = (
    "Raise `{metric}` (time listened per session, averaged per user) with a better next-track "
    "recommender, proven by an A/B test.")


def write_report(path: str | Path, *, table: pd.DataFrame, plot: str | Path, arms: Mapping[str, str],
                 primary_metric: str, headroom: Mapping[str, float], means: Mapping[str, float],
                 oracle_mean: float, decision: str, details: Sequence[str], srm: Mapping[str, float],
                 headline: pd.DataFrame | None = None, idea: str | None = None) -> Path:
    """The one-page report in the seed's shape: i. idea, ii. details, iii. results.

    `arms` maps arm -> recommender, `means` the primary metric per recommender, `headroom`
    the share of the Random-to-oracle gap each captures, `details` the run's facts
    (world, seeds, day sizes, model versions, commands) as bullet lines, `idea` the
    experiment's hypothesis in prose (from its config).
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
        "",
        "### iii. Results",
        f"**Decision:** {decision}", "",
    ]
    if headline is not None and not headline.empty:
        lines += ["Headline contrasts:", "", markdown_table(headline, MD_COLUMNS)]
    lines += [f"`{primary_metric}` per arm, and its share of the Random → oracle headroom "
              f"(oracle = {_fmt(oracle_mean)}, the simulator's best possible recommender):", "",
              "| recommender | mean | headroom captured |", "|---|---|---|"]
    for name, m in means.items():
        lines.append(f"| {name} | {_fmt(float(m))} | {_fmt(float(headroom.get(name, float('nan'))))} |")
    lines += ["", f"![effects]({Path(plot).name})", "",
              f"Every arm against control on `{primary_metric}` (the full table is `effects.md` / `effects.csv`):",
              "", markdown_table(table[(table["metric"] == primary_metric) & (table["control"] == "C")], MD_COLUMNS)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
