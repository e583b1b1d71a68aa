"""The A/B analysis of Botify's event log: the course's method, then what a careful analyst adds.

The course (its notebook) sessionizes each user's events, turns them into user-level
metrics, and compares every treatment arm with control by Welch's t: effect in % of the
control mean, a 95% CI with Welch–Satterthwaite degrees of freedom, "significant" when
the CI excludes 0. That answer is only as honest as the experiment behind it, so beside
it this module reports

* a sample-ratio-mismatch (SRM) chi-square per experiment: when users did not split
  across arms as the assignment promises, every row of that experiment is marked invalid;
* Holm-adjusted p-values across the rows of an experiment (arms x metrics x contrasts),
  because a table of 40 comparisons at 5% finds something by chance (latency rows, a
  guardrail on the service's speed, are a family of their own);
* CUPED: each user's day-1 value of the metric as covariate, where the user has one,
  which removes between-user variance the treatment did not cause (variance reduction
  reported per row);
* arbitrary contrasts between two arms (the seed's headline: SessionAware vs Contextual);
* a ratio CI beside the course's: the course divides a Welch interval for the difference by
  the control mean as if that mean were known, which is too narrow when the control mean is
  itself uncertain and the effect large (83% coverage instead of 95% at +690%); Fieller's
  interval for mean_T / mean_C accounts for both means' uncertainty (`lower_ratio`,
  `upper_ratio`);
* a 2x2 factorial analysis (policy x the model whose lists it serves): the model effect under
  each policy, the policy effect over each model's lists, their interaction, each with its
  CI and Holm within its family (`factorial_table`);
* the share of sessions the simulator's step cap truncated, per arm (`capped_shares`).

Everything here is a pure function of DataFrames and arrays: no MLflow, no service, no
simulator, so each figure can be checked against a hand computation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from training.data.events import sessionize

#: The course's user-level metrics, plus the time of recommended tracks only (the course's
#: `time` includes each session's first track, which the user chose and no recommender did).
METRICS: tuple[str, ...] = (
    "time",
    "sessions",
    "mean_request_latency",
    "mean_tracks_per_session",
    "mean_time_per_session",
    "rec_time",
    "mean_rec_time_per_session",
)

#: Metrics that are an exact shift of another per user, so the same test: every session's
#: first track is played with time 1.0, hence mean_rec_time_per_session = mean_time_per_session - 1.
TWINS: dict[str, str] = {"mean_rec_time_per_session": "mean_time_per_session"}

#: The metrics the service's speed, not the recommendation, decides; they differ between
#: an HTTP and an in-process run of the same seed.
LATENCY_METRICS: tuple[str, ...] = ("mean_request_latency",)

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


class AnalysisError(ValueError):
    """The log cannot be analysed as it is (empty, no arms, inconsistent assignment)."""


# --------------------------------------------------------------------------- log -> users

def user_metrics(events: pd.DataFrame) -> pd.DataFrame:
    """The course's per-user table: sessions, tracks, time, latency and their ratios.

    Sessions are cut by `training.data.events.sessionize` (a session ends at "last"; a trailing
    session without one still counts, as in the course), the same cut training uses.
    `tracks` counts events (every "next" and the closing "last"), which is the number of
    tracks played including each session's first; `rec_time` drops the first event of each
    session (the track the user picked, always time 1.0 in the simulator).
    """
    if events is None or len(events) == 0:
        raise AnalysisError("the event log is empty: nothing to analyse "
                            "(did the simulator reach the service? is event_log.dir right?)")
    ev = sessionize(events)
    ev = ev.assign(rec_time=np.where(ev["position"].to_numpy() == 0, 0.0, ev["time"].to_numpy(float)))
    g = ev.groupby("user", sort=True)
    users = pd.DataFrame({
        "sessions": g["session"].nunique().astype(float),
        "tracks": g.size().astype(float),
        "time": g["time"].sum().astype(float),
        "rec_time": g["rec_time"].sum().astype(float),
        "latency": g["latency"].sum().astype(float),
    })
    users["mean_request_latency"] = users["latency"] / users["tracks"]
    users["mean_tracks_per_session"] = users["tracks"] / users["sessions"]
    users["mean_time_per_session"] = users["time"] / users["sessions"]
    users["mean_rec_time_per_session"] = users["rec_time"] / users["sessions"]
    users.index.name = "user"
    return users


def assign_arms(events: pd.DataFrame, experiment: str) -> pd.Series:
    """Each user's arm in `experiment`, from the `experiments` map the service logged.

    A user must keep one arm for the whole experiment; two arms for one user means the
    assignment is broken and no comparison of arms can be trusted.
    """
    if len(events) == 0:
        raise AnalysisError("the event log is empty: no arms to read")
    col = f"experiments.{experiment}"
    if col in events.columns:  # a reader that flattened the map
        arms = events[col]
    else:
        arms = events["experiments"].map(lambda m: (m or {}).get(experiment) if isinstance(m, Mapping) else None)
    frame = pd.DataFrame({"user": events["user"].to_numpy(), "arm": arms.to_numpy()}).dropna()
    if frame.empty:
        raise AnalysisError(f"no event carries experiment {experiment!r}: is it active in the service's config?")
    per_user = frame.groupby("user")["arm"].agg(["first", "nunique"])
    broken = per_user.index[per_user["nunique"] > 1]
    if len(broken):
        raise AnalysisError(f"experiment {experiment!r}: {len(broken)} user(s) seen in more than one arm "
                            f"(e.g. user {broken[0]}); the assignment is not deterministic")
    out = per_user["first"].astype(str)
    out.name = "arm"
    return out


def experiments_in(events: pd.DataFrame) -> list[str]:
    """Experiment names in the log, in the order the service logged them."""
    names: dict[str, None] = {}
    for m in events["experiments"]:
        if isinstance(m, Mapping):
            for k in m:
                names.setdefault(k, None)
    return list(names)


# ------------------------------------------------------------------------------ statistics

@dataclass(frozen=True)
class Welch:
    """Welch's comparison of two means (treatment minus control)."""

    diff: float
    se: float
    dof: float
    lower: float
    upper: float
    p_value: float

    @property
    def significant(self) -> bool:
        return bool(self.lower > 0 or self.upper < 0)


def welch(mean_t: float, var_t: float, n_t: int, mean_c: float, var_c: float, n_c: int,
          alpha: float = 0.05) -> Welch:
    """Welch's t on summary statistics: the course's CI, and the p-value Holm needs.

    Degrees of freedom by Welch–Satterthwaite, so unequal arm sizes and variances (the
    usual case: a good recommender spreads users' times more) keep the nominal level.
    """
    if n_t < 2 or n_c < 2:
        nan = float("nan")
        return Welch(mean_t - mean_c, nan, nan, nan, nan, nan)
    a, b = var_t / n_t, var_c / n_c
    se = float(np.sqrt(a + b))
    diff = float(mean_t - mean_c)
    if se == 0.0:
        p = 1.0 if diff == 0 else 0.0
        return Welch(diff, 0.0, float("inf"), diff, diff, p)
    dof = float((a + b) ** 2 / (a ** 2 / (n_t - 1) + b ** 2 / (n_c - 1)))
    q = float(stats.t.ppf(1 - alpha / 2, dof))
    p = float(2 * stats.t.sf(abs(diff) / se, dof))
    return Welch(diff, se, dof, diff - q * se, diff + q * se, p)


def welch_samples(treatment: Sequence[float], control: Sequence[float], alpha: float = 0.05) -> Welch:
    """Welch's comparison of two samples (sample variances, ddof=1)."""
    t, c = np.asarray(treatment, float), np.asarray(control, float)
    if len(t) == 0 or len(c) == 0:
        nan = float("nan")
        return Welch(nan, nan, nan, nan, nan, nan)
    return welch(t.mean(), t.var(ddof=1) if len(t) > 1 else np.nan, len(t),
                 c.mean(), c.var(ddof=1) if len(c) > 1 else np.nan, len(c), alpha)


@dataclass(frozen=True)
class Ratio:
    """A relative effect mean_T / mean_C - 1 with its interval (fractions, not %)."""

    effect: float
    lower: float
    upper: float

    @property
    def significant(self) -> bool:
        return bool(self.lower > 0 or self.upper < 0)


def fieller(mean_t: float, var_t: float, n_t: int, mean_c: float, var_c: float, n_c: int,
            alpha: float = 0.05, dof: float | None = None) -> Ratio:
    """Fieller's interval for mean_T / mean_C - 1 from two independent arms.

    The set of ratios r for which mean_T - r mean_C = 0 is not rejected by a t-test with
    variance var_T/n_T + r^2 var_C/n_C: exact for normal means, and, unlike the course's
    Welch interval divided by the control mean, it widens (asymmetrically, upwards) with
    the control mean's own uncertainty. `dof` defaults to the Welch-Satterthwaite dof of the
    difference, so at r = 1 the interval excludes 0 exactly when Welch's test rejects: the
    verdict is the course's, only the interval changes. When the control mean itself is not
    distinguishable from 0 the set is unbounded: (-inf, inf).
    """
    nan = float("nan")
    if n_t < 2 or n_c < 2 or mean_c == 0 or not np.isfinite(var_t) or not np.isfinite(var_c):
        return Ratio(mean_t / mean_c - 1 if mean_c else nan, nan, nan)
    a, b = var_t / n_t, var_c / n_c
    effect = float(mean_t / mean_c - 1)
    if dof is None:
        dof = float((a + b) ** 2 / (a ** 2 / (n_t - 1) + b ** 2 / (n_c - 1))) if a + b > 0 else float("inf")
    q2 = float(stats.t.ppf(1 - alpha / 2, dof)) ** 2
    # (mean_c^2 - q2 b) r^2 - 2 mean_t mean_c r + (mean_t^2 - q2 a) <= 0
    qa = mean_c ** 2 - q2 * b
    if qa <= 0:
        return Ratio(effect, float("-inf"), float("inf"))
    half = float(np.sqrt(q2 * (a * qa + b * mean_t ** 2)))
    lo, hi = (mean_t * mean_c - half) / qa, (mean_t * mean_c + half) / qa
    return Ratio(effect, float(lo - 1), float(hi - 1))


def fieller_samples(treatment: Sequence[float], control: Sequence[float], alpha: float = 0.05) -> Ratio:
    """Fieller's interval of two samples (sample variances, ddof=1)."""
    t, c = np.asarray(treatment, float), np.asarray(control, float)
    if len(t) < 2 or len(c) < 2:
        nan = float("nan")
        return Ratio(t.mean() / c.mean() - 1 if len(t) and len(c) and c.mean() else nan, nan, nan)
    return fieller(t.mean(), t.var(ddof=1), len(t), c.mean(), c.var(ddof=1), len(c), alpha)


@dataclass(frozen=True)
class Interaction:
    """(m11 / m10) / (m01 / m00) - 1: how much larger one factor's relative effect is at the
    other factor's second level than at its first (0: the effects multiply, no interaction)."""

    effect: float
    lower: float
    upper: float
    se_log: float
    dof: float
    p_value: float

    @property
    def significant(self) -> bool:
        return bool(self.lower > 0 or self.upper < 0)


def ratio_interaction(m11: tuple[float, float, int], m10: tuple[float, float, int],
                      m01: tuple[float, float, int], m00: tuple[float, float, int],
                      alpha: float = 0.05) -> Interaction:
    """The interaction of a 2x2 on the relative scale, by the delta method on the log scale.

    Each cell is (mean, variance, n) of an independent arm. log I = log m11 - log m10 -
    log m01 + log m00, Var(log m) ~ var / (n m^2) per cell, summed; the t quantile takes the
    Welch-Satterthwaite dof of the four terms; the interval is back-transformed, so it is
    asymmetric like the effect itself. The relative scale is the one the simple effects are
    reported on (% of the baseline), and it does not call an effect "larger" merely because
    the baseline it multiplies is larger.
    """
    cells = [m11, m10, m01, m00]
    nan = float("nan")
    if any(m <= 0 or n < 2 or not np.isfinite(v) for m, v, n in cells):
        return Interaction(nan, nan, nan, nan, nan, nan)
    terms = np.array([v / (n * m * m) for m, v, n in cells])
    log_i = np.log(m11[0]) - np.log(m10[0]) - np.log(m01[0]) + np.log(m00[0])
    se = float(np.sqrt(terms.sum()))
    effect = float(np.exp(log_i) - 1)
    if se == 0:
        return Interaction(effect, effect, effect, 0.0, float("inf"), 1.0 if log_i == 0 else 0.0)
    dof = float(terms.sum() ** 2 / sum(t * t / (n - 1) for t, (_, _, n) in zip(terms, cells)))
    q = float(stats.t.ppf(1 - alpha / 2, dof))
    p = float(2 * stats.t.sf(abs(log_i) / se, dof))
    return Interaction(effect, float(np.exp(log_i - q * se) - 1), float(np.exp(log_i + q * se) - 1), se, dof, p)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not in the family).

    Controls the family-wise error rate for any dependence between the tests, which the
    rows of one table have (they share the control arm and the users).
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(p[idx], kind="stable")]
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


def srm_test(counts: Mapping[str, int] | pd.Series, weights: Mapping[str, float] | None = None) -> tuple[float, float]:
    """Chi-square goodness of fit of users per arm against the assignment's split.

    The service assigns by a hash modulo the number of arms, so the expected split is
    equal unless weights say otherwise. A tiny p-value means users were lost or gained
    unevenly (a crashing arm, a bot, a logging bug): the comparison is then invalid
    whatever its CI says. Returns (chi2, p).
    """
    counts = pd.Series(counts, dtype=float)
    if len(counts) < 2:
        return 0.0, 1.0
    if weights is None:
        w = pd.Series(1.0, index=counts.index)
    else:
        w = pd.Series(weights, dtype=float).reindex(counts.index)
        if w.isna().any():
            raise AnalysisError(f"SRM: no weight for arm(s) {list(w.index[w.isna()])}")
    expected = w / w.sum() * counts.sum()
    chi2, p = stats.chisquare(counts.to_numpy(), expected.to_numpy())
    return float(chi2), float(p)


def cuped(y: pd.Series, x: pd.Series) -> tuple[pd.Series, float]:
    """CUPED-adjusted outcome: y - theta (x - mean x) for users with a covariate.

    `x` is the user's pre-experiment (day-1) value, NaN where the user has none; those
    users keep their raw outcome, which leaves the difference of arm means unbiased
    because x was measured before the assignment. theta = cov(x, y) / var(x) over the
    users that have x, pooled across arms. Returns (adjusted y, theta).
    """
    x = x.reindex(y.index)
    has = x.notna()
    if has.sum() < 3 or float(x[has].var(ddof=1)) == 0.0:
        return y.astype(float), 0.0
    xs, ys = x[has].astype(float), y[has].astype(float)
    theta = float(np.cov(xs, ys, ddof=1)[0, 1] / xs.var(ddof=1))
    adj = y.astype(float).copy()
    adj[has] = ys - theta * (xs - xs.mean())
    return adj, theta


# --------------------------------------------------------------------------- the table

def _row(experiment: str, treatment: str, control: str, metric: str, yt: pd.Series, yc: pd.Series,
         labels: Mapping[str, str], alpha: float) -> dict:
    w = welch_samples(yt, yc, alpha)
    cm = float(yc.mean())
    pct = (lambda v: 100.0 * v / cm) if cm != 0 else (lambda v: float("nan"))
    r = fieller(float(yt.mean()), float(yt.var(ddof=1)), len(yt), cm, float(yc.var(ddof=1)), len(yc), alpha,
                dof=w.dof) if len(yt) > 1 and len(yc) > 1 else Ratio(float("nan"), float("nan"), float("nan"))
    return {
        "experiment": experiment, "treatment": treatment, "treatment_name": labels.get(treatment, treatment),
        "control": control, "control_name": labels.get(control, control), "metric": metric,
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
            row = _row(experiment, t, c, m, users.loc[in_t, m], users.loc[in_c, m], labels, alpha)
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


def headroom(means: Mapping[str, float], control: float, oracle: float) -> dict[str, float]:
    """Share of the control-to-oracle gap each arm captures: (arm - control) / (oracle - control).

    The oracle (the simulator's best possible recommender) bounds what any arm can reach,
    so this says how far from perfect a significant win still is.
    """
    gap = oracle - control
    return {k: (float(v) - control) / gap if gap else float("nan") for k, v in means.items()}


# ----------------------------------------------------------------------- the 2x2 design

#: Columns of the factorial table, in order.
FACTORIAL_COLUMNS: tuple[str, ...] = (
    "experiment", "metric", "family", "given", "name", "treatment", "control", "treatment_name",
    "control_name", "treatment_mean", "control_mean", "treatment_n", "control_n",
    "effect", "lower", "upper", "significant", "lower_ratio", "upper_ratio", "significant_ratio",
    "p_value", "p_holm", "significant_holm", "srm_p_value", "srm_ok", "valid",
)

#: The families of the factorial table; Holm adjusts within a family and a metric.
FAMILIES: tuple[str, ...] = ("model", "policy", "interaction", "headline")


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
            yt, yc = y[arms == t], y[arms == c]
            w = welch_samples(yt, yc, alpha)
            mt, vt, nt = cell[t]
            mc, vc, nc = cell[c]
            r = fieller(mt, vt, nt, mc, vc, nc, alpha, dof=w.dof)
            pct = 100.0 / mc if mc else float("nan")
            rows.append({"metric": m, "family": family, "given": given, "name": name, "treatment": t, "control": c,
                         "treatment_mean": mt, "control_mean": mc, "treatment_n": nt, "control_n": nc,
                         "effect": w.diff * pct, "lower": w.lower * pct, "upper": w.upper * pct,
                         "significant": w.significant, "lower_ratio": 100 * r.lower, "upper_ratio": 100 * r.upper,
                         "significant_ratio": r.significant, "p_value": w.p_value})
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
