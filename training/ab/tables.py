"""The A/B tables of one day: every arm against control (the course's method, with Fieller,
Holm, SRM and CUPED beside it), the 2x2 of policy x lists, and the capped sessions per arm.
Pure functions of DataFrames: no MLflow, no service, no simulator."""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from training.ab.stats import (AnalysisError, cuped, fieller_samples, holm, ratio_interaction, srm_test,
                               welch_samples)
from training.ab.users import LATENCY_METRICS, METRICS, TWINS

#: Columns of the effects table, in order. The course's columns come first.
TABLE_COLUMNS: tuple[str, ...] = (
    "experiment", "treatment", "treatment_name", "control", "control_name", "metric",
    "effect", "lower", "upper", "control_mean", "treatment_mean", "significant",
    "control_n", "treatment_n", "control_var", "treatment_var",
    "diff", "se", "dof", "p_value", "p_holm", "significant_holm",
    "lower_ratio", "upper_ratio", "significant_ratio",
    "cuped_effect", "cuped_lower", "cuped_upper", "cuped_p_value", "cuped_significant",
    "cuped_covered", "variance_reduction",
    "srm_chi2", "srm_p_value", "srm_ok", "valid",
)



def _compare(yt: pd.Series, yc: pd.Series, alpha: float) -> dict:
    """Treatment vs control users: Welch's difference as % of the control mean (the course's
    CI) and Fieller's ratio CI beside it, on the same degrees of freedom."""
    w = welch_samples(yt, yc, alpha)
    cm = float(yc.mean())
    pct = (lambda v: 100.0 * v / cm) if cm != 0 else (lambda v: float("nan"))
    r = fieller_samples(yt, yc, alpha, dof=w.dof)
    return {
        "effect": pct(w.diff), "lower": pct(w.lower), "upper": pct(w.upper),
        "control_mean": cm, "treatment_mean": float(yt.mean()), "significant": w.significant,
        "control_n": int(len(yc)), "treatment_n": int(len(yt)),
        "control_var": float(yc.var(ddof=1)), "treatment_var": float(yt.var(ddof=1)),
        "diff": w.diff, "se": w.se, "dof": w.dof, "p_value": w.p_value,
        "lower_ratio": 100.0 * r.lower, "upper_ratio": 100.0 * r.upper, "significant_ratio": r.significant,
    }


def effects_table(users: pd.DataFrame, arms: pd.Series, *, experiment: str = "AB", control: str = "C",
                  metrics: Iterable[str] = METRICS, labels: Mapping[str, str] | None = None,
                  contrasts: Iterable[tuple[str, str]] = (), covariates: pd.DataFrame | None = None,
                  weights: Mapping[str, float] | None = None, alpha: float = 0.05,
                  srm_alpha: float = 0.001, expected_arms: Iterable[str] | None = None) -> pd.DataFrame:
    """One experiment's effects table: every arm against control, then the extra contrasts.

    `users` is `user_metrics(...)` (index user), `arms` the user's arm (`assign_arms`),
    `covariates` the same metrics measured on day 1 (index user, NaN/absent where the
    user has no history), `contrasts` pairs (treatment arm, baseline arm), `labels` a
    readable name per arm (its recommender). `expected_arms` lists every configured arm,
    so that an arm with no user at all still fails the SRM check.
    """
    labels = dict(labels or {})
    metrics = list(metrics)
    users, arms, counts = _users_with_arms(users, arms, experiment, expected_arms)
    if control not in counts.index or counts.get(control, 0) == 0:
        raise AnalysisError(f"experiment {experiment!r}: control arm {control!r} has no users "
                            f"(arms seen: {sorted(arms.unique())})")
    chi2, srm_p = srm_test(counts, weights)
    srm_ok = bool(srm_p >= srm_alpha)

    pairs = [(a, control) for a in sorted(counts.index, key=_arm_order) if a != control]
    pairs += [tuple(p) for p in contrasts]
    for t, c in pairs:
        for a in (t, c):
            if a not in counts.index:
                raise AnalysisError(f"experiment {experiment!r}: arm {a!r} is not in the log or the config")

    adjusted: dict[str, pd.Series] = {}
    thetas: dict[str, float] = {}
    if covariates is not None:
        for m in metrics:
            if m in covariates.columns:
                adjusted[m], thetas[m] = cuped(users[m], covariates[m])

    rows = []
    for t, c in pairs:
        in_t, in_c = arms == t, arms == c
        for m in metrics:
            row = {"experiment": experiment, "treatment": t, "treatment_name": labels.get(t, t), "control": c,
                   "control_name": labels.get(c, c), "metric": m,
                   **_compare(users.loc[in_t, m], users.loc[in_c, m], alpha)}
            if m in adjusted:
                yt, yc = adjusted[m][in_t], adjusted[m][in_c]
                cw = welch_samples(yt, yc, alpha)
                cm = row["control_mean"]
                covered = covariates[m].reindex(users.index[in_t | in_c]).notna().mean()
                row.update({
                    "cuped_effect": 100 * cw.diff / cm if cm else np.nan,
                    "cuped_lower": 100 * cw.lower / cm if cm else np.nan,
                    "cuped_upper": 100 * cw.upper / cm if cm else np.nan,
                    "cuped_p_value": cw.p_value, "cuped_significant": cw.significant,
                    "cuped_covered": float(covered),
                    "variance_reduction": 1 - (cw.se / row["se"]) ** 2 if row["se"] else np.nan,
                })
            rows.append(row)
    table = pd.DataFrame(rows)
    # Holm's family: every row, except a metric that is an exact shift of another (the same
    # hypothesis twice would only make the correction stricter); it takes its twin's p_holm.
    # Latency rows are a guardrail on the service's speed, not a claim about recommendations,
    # and differ between HTTP and in-process runs: they form a family of their own, so the
    # recommendation rows' Holm p-values are the same whichever way the users were played.
    twin = table["metric"].isin(list(TWINS)).to_numpy()
    latency = table["metric"].isin(list(LATENCY_METRICS)).to_numpy()
    p_holm = np.full(len(table), np.nan)
    pv = table["p_value"].to_numpy(dtype=float)
    for family in (~twin & ~latency, latency):
        p_holm[family] = holm(pv[family])
    table["p_holm"] = p_holm
    if twin.any():
        key = table[["experiment", "treatment", "control", "metric"]].copy()
        key.loc[twin, "metric"] = key.loc[twin, "metric"].map(TWINS)
        lookup = dict(zip(map(tuple, table.loc[~twin, ["experiment", "treatment", "control", "metric"]].to_numpy()),
                          table.loc[~twin, "p_holm"]))
        table.loc[twin, "p_holm"] = [lookup.get(tuple(k), np.nan) for k in key.loc[twin].to_numpy()]
    table["significant_holm"] = table["p_holm"] < alpha
    table["srm_chi2"], table["srm_p_value"], table["srm_ok"] = chi2, srm_p, srm_ok
    table["valid"] = srm_ok
    return table.reindex(columns=list(TABLE_COLUMNS))


def _users_with_arms(users: pd.DataFrame, arms: pd.Series, experiment: str,
                     expected_arms: Iterable[str] | None) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """The users that have both metrics and an arm, and the users per arm (every expected
    arm included, with 0 when it lost every user, so the SRM check sees it)."""
    arms = arms.reindex(users.index).dropna()
    users = users.loc[arms.index]
    if users.empty:
        raise AnalysisError(f"experiment {experiment!r}: no user has both events and an arm")
    counts = arms.value_counts()
    if expected_arms is not None:
        counts = counts.reindex(list(expected_arms), fill_value=0)
    return users, arms, counts


def _arm_order(arm: str) -> tuple[int, str]:
    """C, T1, T2, ..., T10 in numeric order."""
    if arm == "C":
        return (-1, arm)
    digits = arm[1:] if arm[:1] == "T" else ""
    return (int(digits), arm) if digits.isdigit() else (10 ** 6, arm)



#: Columns of the factorial table, in order.
FACTORIAL_COLUMNS: tuple[str, ...] = (
    "experiment", "metric", "family", "given", "name", "treatment", "control", "treatment_name",
    "control_name", "treatment_mean", "control_mean", "treatment_n", "control_n",
    "effect", "lower", "upper", "significant", "lower_ratio", "upper_ratio", "significant_ratio",
    "p_value", "p_holm", "significant_holm", "srm_p_value", "srm_ok", "valid",
)


def check_design(design: Mapping[str, Mapping[str, str]]) -> tuple[list[str], list[str]]:
    """(policies, list levels) of a 2x2 `{policy: {lists: arm}}`, baseline levels first.

    Both policies must name the same two list levels and four distinct arms; anything else
    is not a 2x2 and its "interaction" would mean nothing.
    """
    policies = list(design)
    if len(policies) != 2:
        raise AnalysisError(f"a 2x2 design needs exactly two policies, got {policies}")
    levels = list(design[policies[0]])
    if len(levels) != 2 or list(design[policies[1]]) != levels:
        raise AnalysisError(f"a 2x2 design needs the same two list levels under each policy, got "
                            f"{ {p: list(design[p]) for p in policies} }")
    cells = [design[p][lv] for p in policies for lv in levels]
    if len(set(cells)) != 4:
        raise AnalysisError(f"a 2x2 design needs four different arms, got {cells}")
    return policies, levels


def factorial_table(users: pd.DataFrame, arms: pd.Series, design: Mapping[str, Mapping[str, str]], *,
                    experiment: str = "AB", metrics: Iterable[str] = METRICS,
                    labels: Mapping[str, str] | None = None, headline: tuple[str, str] | None = None,
                    alpha: float = 0.05, srm_alpha: float = 0.001, weights: Mapping[str, float] | None = None,
                    expected_arms: Iterable[str] | None = None) -> pd.DataFrame:
    """The 2x2 of policy x lists: simple effects, interaction and the seed's headline, per metric.

    `design` is `{policy: {lists: arm}}` with the baseline policy and the baseline (control)
    lists first, e.g. `{"Contextual": {"control": "T3", "treatment": "T4"},
    "SessionAware": {"control": "T5", "treatment": "T6"}}`. Rows, per metric:

    * family `model`, one per policy: the treatment model's lists vs the control model's
      under that policy (what a promotion of the model is about);
    * family `policy`, one per list level: the second policy vs the first over those lists;
    * family `interaction`: (model effect under the second policy + 1) / (model effect under
      the first + 1) - 1, i.e. how much more (relatively) the new model gains under the new
      policy; by the delta method on the log scale (`ratio_interaction`), so it has no
      course-method interval (`lower`/`upper` empty);
    * family `headline` (when given): the seed's contrast, which changes both factors at once.

    Each simple effect carries the course's interval (Welch / control mean) and Fieller's;
    `p_value` is Welch's for the difference of the two means. Holm adjusts within each
    (metric, family): the model-effect family of one metric is its two model effects. SRM is
    the experiment's, over every arm in `arms` (and `expected_arms`).
    """
    labels = dict(labels or {})
    policies, levels = check_design(design)
    users, arms, counts = _users_with_arms(users, arms, experiment, expected_arms)
    for p in policies:
        for lv in levels:
            if counts.get(design[p][lv], 0) < 2:
                raise AnalysisError(f"experiment {experiment!r}: arm {design[p][lv]} ({p} x {lv} lists) has "
                                    f"fewer than 2 users; the 2x2 needs all four cells")
    if headline is not None:
        for a in headline:
            if counts.get(a, 0) < 2:
                raise AnalysisError(f"experiment {experiment!r}: headline arm {a!r} has fewer than 2 users")
    chi2, srm_p = srm_test(counts, weights)
    srm_ok = bool(srm_p >= srm_alpha)
    (p0, p1), (l0, l1) = policies, levels
    pairs: list[tuple[str, str, str, tuple[str, str]]] = [
        ("model", p, f"model effect under {p} ({l1} vs {l0} lists)", (design[p][l1], design[p][l0]))
        for p in policies]
    pairs += [("policy", lv, f"policy effect over {lv} lists ({p1} vs {p0})", (design[p1][lv], design[p0][lv]))
              for lv in levels]
    if headline is not None:
        t, c = headline
        pairs.append(("headline", "", "the seed's headline (policy and lists changed at once)", (t, c)))

    rows = []
    for m in metrics:
        y = users[m].astype(float)
        cell = {a: (float(y[arms == a].mean()), float(y[arms == a].var(ddof=1)), int((arms == a).sum()))
                for a in set(arms)}
        for family, given, name, (t, c) in pairs:
            rows.append({"metric": m, "family": family, "given": given, "name": name, "treatment": t, "control": c,
                         **_compare(y[arms == t], y[arms == c], alpha)})
        t1, t0 = f"{design[p1][l1]}/{design[p1][l0]}", f"{design[p0][l1]}/{design[p0][l0]}"
        i = ratio_interaction(cell[design[p1][l1]], cell[design[p1][l0]], cell[design[p0][l1]],
                              cell[design[p0][l0]], alpha)
        rows.append({"metric": m, "family": "interaction", "given": "",
                     "name": f"interaction: model effect under {p1} vs under {p0} (ratio of ratios)",
                     "treatment": t1, "control": t0,
                     "treatment_mean": cell[design[p1][l1]][0] / cell[design[p1][l0]][0],
                     "control_mean": cell[design[p0][l1]][0] / cell[design[p0][l0]][0],
                     "treatment_n": cell[design[p1][l1]][2] + cell[design[p1][l0]][2],
                     "control_n": cell[design[p0][l1]][2] + cell[design[p0][l0]][2],
                     "effect": 100 * i.effect, "lower": np.nan, "upper": np.nan, "significant": np.nan,
                     "lower_ratio": 100 * i.lower, "upper_ratio": 100 * i.upper,
                     "significant_ratio": i.significant, "p_value": i.p_value})
    table = pd.DataFrame(rows)
    table["experiment"] = experiment
    table["treatment_name"] = [_cell_name(a, labels) for a in table["treatment"]]
    table["control_name"] = [_cell_name(a, labels) for a in table["control"]]
    table["p_holm"] = np.nan
    for _, idx in table.groupby(["metric", "family"], sort=False).groups.items():
        table.loc[idx, "p_holm"] = holm(table.loc[idx, "p_value"].to_numpy(float))
    table["significant_holm"] = table["p_holm"] < alpha
    table["srm_p_value"], table["srm_ok"], table["valid"] = srm_p, srm_ok, srm_ok
    return table.reindex(columns=list(FACTORIAL_COLUMNS))


def _cell_name(arm: str, labels: Mapping[str, str]) -> str:
    """A readable name of an arm, or of a ratio of two arms ("T6/T5")."""
    return "/".join(labels.get(a, a) for a in arm.split("/"))


# ------------------------------------------------------------------- the session cap

def capped_shares(stats: pd.DataFrame, arms: pd.Series, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per arm: episodes, how many the simulator's step cap truncated, and their share.

    `stats` is the simulator's per-episode CSV (`user`, `truncated`), `arms` the user's arm
    from the event log (`assign_arms`). A user plays several episodes but keeps one arm, so
    joining by user is exact. A truncated session was cut while the listener was still
    listening: the arm's mean understates what it would have reached, and the more an arm
    (or the oracle) is capped, the more its figure is the cap's rather than its own.
    """
    if "truncated" not in stats.columns:
        raise AnalysisError("the simulator's stats have no `truncated` column: re-run with a current sim.run")
    arm = stats["user"].map(arms)
    if arm.isna().any():
        missing = stats.loc[arm.isna(), "user"].unique()
        raise AnalysisError(f"{len(missing)} simulated user(s) have no arm in the event log (e.g. user "
                            f"{missing[0]}): the stats and the log are not from the same day")
    g = pd.DataFrame({"arm": arm, "truncated": stats["truncated"].astype(int)}).groupby("arm")["truncated"]
    out = pd.DataFrame({"episodes": g.size(), "capped": g.sum()})
    out = out.loc[sorted(out.index, key=_arm_order)]
    out.insert(0, "name", [(labels or {}).get(a, a) for a in out.index])
    out["capped_share"] = out["capped"] / out["episodes"]
    out.index.name = "arm"
    return out
