"""The statistics of an A/B table, as pure functions of numbers: Welch's t, Fieller's ratio
interval, the 2x2's interaction on the log scale, Holm's correction, the sample-ratio check
and CUPED. Each can be checked against a hand computation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats


class AnalysisError(ValueError):
    """The log cannot be analysed as it is (empty, no arms, inconsistent assignment)."""


class _Interval:
    """An interval that is significant when it excludes 0."""

    lower: float
    upper: float

    @property
    def significant(self) -> bool:
        return bool(self.lower > 0 or self.upper < 0)


@dataclass(frozen=True)
class Welch(_Interval):
    """Welch's comparison of two means (treatment minus control)."""

    diff: float
    se: float
    dof: float
    lower: float
    upper: float
    p_value: float


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
class Ratio(_Interval):
    """A relative effect mean_T / mean_C - 1 with its interval (fractions, not %)."""

    effect: float
    lower: float
    upper: float


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


def fieller_samples(treatment: Sequence[float], control: Sequence[float], alpha: float = 0.05,
                    dof: float | None = None) -> Ratio:
    """Fieller's interval of two samples (sample variances, ddof=1)."""
    t, c = np.asarray(treatment, float), np.asarray(control, float)
    if len(t) < 2 or len(c) < 2:
        nan = float("nan")
        return Ratio(t.mean() / c.mean() - 1 if len(t) and len(c) and c.mean() else nan, nan, nan)
    return fieller(t.mean(), t.var(ddof=1), len(t), c.mean(), c.var(ddof=1), len(c), alpha, dof)


@dataclass(frozen=True)
class Interaction(_Interval):
    """(m11 / m10) / (m01 / m00) - 1: how much larger one factor's relative effect is at the
    other factor's second level than at its first (0: the effects multiply, no interaction)."""

    effect: float
    lower: float
    upper: float
    se_log: float
    dof: float
    p_value: float


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

