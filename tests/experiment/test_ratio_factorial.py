"""Ratio CIs, the 2x2 factorial analysis and the capped-session shares, against hand
computations and simulated coverage (the arithmetic is in the comments)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from training.ab import stats as S
from training.ab import tables as T

# ------------------------------------------------------------------ Fieller (by hand)


def test_fieller_hand_computed_and_wider_than_the_course_interval():
    # treatment [3,4,5]: mean 4, var 1, n 3 -> a = 1/3; control [1,2,3]: mean 2, var 1 -> b = 1/3
    # Welch dof = (2/3)^2 / ((1/3)^2/2 * 2) = 4; q = t(.975, 4) = 2.776445
    # Fieller: (4 - 2r)^2 <= q^2 (1/3 + r^2/3)
    #   A = 4 - q^2/3 = 1.430450, half = sqrt(q^2 (a A + b 16)) = 6.692416
    #   r = (8 -+ 6.692416) / 1.430450 = 0.914106, 10.271...; effect r - 1
    r = S.fieller_samples([3, 4, 5], [1, 2, 3])
    q2 = stats.t.ppf(0.975, 4) ** 2
    qa = 4 - q2 / 3
    half = math.sqrt(q2 * (qa / 3 + 16 / 3))
    assert r.effect == pytest.approx(1.0)
    assert r.lower == pytest.approx((8 - half) / qa - 1) and r.lower == pytest.approx(-0.085894, abs=1e-5)
    assert r.upper == pytest.approx((8 + half) / qa - 1)
    # the bounds solve Fieller's equation (mean_t - r mean_c)^2 = q^2 (a + r^2 b)
    for bound in (r.lower + 1, r.upper + 1):
        assert (4 - 2 * bound) ** 2 == pytest.approx(q2 * (1 / 3 + bound ** 2 / 3))
    # the course's: (2 -+ q sqrt(2/3)) / 2 = [-13.3%, +213.3%]: narrower, and symmetric
    w = S.welch_samples([3, 4, 5], [1, 2, 3])
    assert w.lower / 2 == pytest.approx((2 - math.sqrt(q2 * 2 / 3)) / 2)
    assert r.upper - r.lower > (w.upper - w.lower) / 2
    assert not r.significant and not w.significant


def test_fieller_verdict_is_welchs_and_unbounded_when_control_is_noise():
    rng = np.random.default_rng(5)
    for shift in (0.0, 0.05, 0.1, 0.2, 0.5):
        t, c = rng.gamma(2.0, 1.0 + shift, 300), rng.gamma(2.0, 1.0, 300)
        assert S.fieller_samples(t, c).significant == S.welch_samples(t, c).significant
    # control mean 0.1 with sd 1 over 10 users: not distinguishable from 0 -> no finite interval
    r = S.fieller_samples([1.0, 2.0, 3.0], [0.1 + d for d in np.linspace(-1.5, 1.5, 10)])
    assert r.lower == -math.inf and r.upper == math.inf and not r.significant


def _coverage(n_draws: int, seed: int, gen_t, gen_c, true: float) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    hit_fieller = hit_course = 0
    for _ in range(n_draws):
        t, c = gen_t(rng), gen_c(rng)
        r = S.fieller_samples(t, c)
        w = S.welch_samples(t, c)
        hit_fieller += r.lower <= true <= r.upper
        hit_course += w.lower / c.mean() <= true <= w.upper / c.mean()
    return hit_fieller / n_draws, hit_course / n_draws


def test_fieller_covers_95_percent_where_the_course_interval_does_not():
    # skewed positive arms like users' session times: gamma(shape 1), means 16.6 and 2.1
    # (SessionAware vs Random on the default world): true effect 16.6/2.1 - 1 = +690%.
    # 600 draws: the binomial s.e. of a 95% coverage is 0.9 points, so 93%-97% is ~2 s.e.
    cov, course = _coverage(600, 20261129, lambda r: r.gamma(1.0, 16.6, 300), lambda r: r.gamma(1.0, 2.1, 300),
                            16.6 / 2.1 - 1)
    assert 0.93 <= cov <= 0.97, cov
    # the course's interval ignores the control mean's uncertainty: ~83% here (the "too narrow")
    assert course < 0.90, course


def test_fieller_covers_95_percent_for_a_small_effect_with_unequal_arms():
    cov, _ = _coverage(600, 7, lambda r: r.lognormal(0.3, 1.0, 250), lambda r: r.lognormal(0.1, 0.9, 400),
                       math.exp(0.3 + 0.5) / math.exp(0.1 + 0.405) - 1)
    assert 0.93 <= cov <= 0.97, cov


# --------------------------------------------------------------------- the 2x2 by hand

DESIGN = {"Contextual": {"control": "T3", "treatment": "T4"}, "SessionAware": {"control": "T5", "treatment": "T6"}}
LABELS = {"C": "Random", "T3": "Ctx-c", "T4": "Ctx-t", "T5": "SA-c", "T6": "SA-t"}


def _cells():
    # T3 [1,2,3] mean 2 var 1; T4 [3,4,5] mean 4 var 1; T5 [2,4,6] mean 4 var 4;
    # T6 [8,12,16] mean 12 var 16; C [1,2,3] (only for the SRM count)
    data = {"C": [1, 2, 3], "T3": [1, 2, 3], "T4": [3, 4, 5], "T5": [2, 4, 6], "T6": [8, 12, 16]}
    arms, y = [], []
    for a, v in data.items():
        arms += [a] * len(v)
        y += v
    idx = pd.Index(range(len(y)), name="user")
    return pd.DataFrame({"mean_time_per_session": np.array(y, float)}, index=idx), pd.Series(arms, index=idx)


def test_factorial_table_hand_computed():
    users, arms = _cells()
    t = T.factorial_table(users, arms, DESIGN, metrics=["mean_time_per_session"], labels=LABELS, headline=("T6", "T3"))
    assert list(t.columns) == list(T.FACTORIAL_COLUMNS)
    by = {(r.family, r.given): r for r in t.itertuples()}
    assert list(zip(t["family"], t["given"])) == [("model", "Contextual"), ("model", "SessionAware"),
                                                  ("policy", "control"), ("policy", "treatment"),
                                                  ("headline", ""), ("interaction", "")]
    # simple effects: 4/2 - 1 = +100%, 12/4 - 1 = +200%; policy: 4/2 - 1 = +100%, 12/4 - 1 = +200%
    assert by["model", "Contextual"].effect == pytest.approx(100.0)
    assert (by["model", "Contextual"].treatment, by["model", "Contextual"].control) == ("T4", "T3")
    assert by["model", "SessionAware"].effect == pytest.approx(200.0)
    assert (by["model", "SessionAware"].treatment, by["model", "SessionAware"].control) == ("T6", "T5")
    assert by["policy", "control"].effect == pytest.approx(100.0)
    assert by["policy", "treatment"].effect == pytest.approx(200.0)
    assert by["headline", ""].effect == pytest.approx(500.0)          # 12/2 - 1
    # the model effect under Contextual: the hand-computed Fieller interval above
    assert by["model", "Contextual"].lower_ratio == pytest.approx(100 * S.fieller_samples([3, 4, 5], [1, 2, 3]).lower)
    # SessionAware: Welch on [8,12,16] vs [2,4,6]: diff 8, se sqrt(16/3 + 4/3) = sqrt(20/3)
    w = stats.ttest_ind([8, 12, 16], [2, 4, 6], equal_var=False)
    assert by["model", "SessionAware"].p_value == pytest.approx(w.pvalue)
    # Holm within the model family of two: min(1, 2 p_min), then max with p_max
    pm = sorted([by["model", "Contextual"].p_value, by["model", "SessionAware"].p_value])
    assert min(by["model", "Contextual"].p_holm, by["model", "SessionAware"].p_holm) == pytest.approx(min(1, 2 * pm[0]))
    assert max(by["model", "Contextual"].p_holm, by["model", "SessionAware"].p_holm) == pytest.approx(
        max(min(1, 2 * pm[0]), pm[1]))
    # a family of one is not adjusted
    assert by["interaction", ""].p_holm == pytest.approx(by["interaction", ""].p_value)
    # interaction: (12/4) / (4/2) - 1 = +50%
    # Var(log m) = var / (n m^2): T6 16/(3*144) = 1/27, T5 4/(3*16) = 1/12, T4 1/(3*16) = 1/48, T3 1/(3*4) = 1/12
    # se = sqrt(1/27 + 1/12 + 1/48 + 1/12); dof = se^4 / (sum term^2 / 2)
    i = by["interaction", ""]
    terms = [1 / 27, 1 / 12, 1 / 48, 1 / 12]
    se, dof = math.sqrt(sum(terms)), sum(terms) ** 2 / (sum(x * x for x in terms) / 2)
    assert dof == pytest.approx(6.4248, abs=1e-3)
    q = stats.t.ppf(0.975, dof)
    assert i.effect == pytest.approx(50.0)
    assert i.lower_ratio == pytest.approx(100 * (1.5 * math.exp(-q * se) - 1))
    assert i.upper_ratio == pytest.approx(100 * (1.5 * math.exp(q * se) - 1))
    assert i.p_value == pytest.approx(2 * stats.t.sf(math.log(1.5) / se, dof))
    assert math.isnan(i.lower) and math.isnan(i.upper)          # the course has no interval for it
    assert (i.treatment, i.control, i.treatment_name) == ("T6/T5", "T4/T3", "SA-t/SA-c")
    assert i.treatment_mean == pytest.approx(3.0) and i.control_mean == pytest.approx(2.0)
    assert t["valid"].all()


def test_interaction_is_zero_when_the_effects_multiply():
    # model x3 under both policies: ratio of ratios 1 -> interaction 0, not significant
    rng = np.random.default_rng(2)
    n = 400
    means = {"C": 1.0, "T3": 2.0, "T4": 6.0, "T5": 5.0, "T6": 15.0}
    arms = pd.Series(np.repeat(list(means), n), index=pd.Index(range(n * len(means)), name="user"))
    y = np.concatenate([rng.gamma(2.0, m / 2.0, n) for m in means.values()])
    users = pd.DataFrame({"mean_time_per_session": y}, index=arms.index)
    t = T.factorial_table(users, arms, DESIGN, metrics=["mean_time_per_session"]).set_index("family")
    assert abs(t.loc["interaction", "effect"]) < 20 and not t.loc["interaction", "significant_ratio"]
    assert t.loc["interaction", "lower_ratio"] < 0 < t.loc["interaction", "upper_ratio"]
    assert (t.loc["model", "significant_holm"]).all()


def test_interaction_interval_covers_95_percent():
    # four independent gamma arms with a true ratio-of-ratios of (9/3) / (4/2) = 1.5
    rng = np.random.default_rng(11)
    true, hits, draws = 0.5, 0, 600
    for _ in range(draws):
        cells = [rng.gamma(1.5, m / 1.5, n) for m, n in ((9.0, 300), (3.0, 300), (4.0, 250), (2.0, 350))]
        i = S.ratio_interaction(*[(c.mean(), c.var(ddof=1), len(c)) for c in cells])
        hits += i.lower <= true <= i.upper
    assert 0.93 <= hits / draws <= 0.97, hits / draws


def test_design_that_is_not_a_2x2_is_a_clear_error():
    users, arms = _cells()
    with pytest.raises(S.AnalysisError, match="two policies"):
        T.factorial_table(users, arms, {"Contextual": DESIGN["Contextual"]}, metrics=["mean_time_per_session"])
    with pytest.raises(S.AnalysisError, match="same two list levels"):
        T.factorial_table(users, arms, {**DESIGN, "SessionAware": {"control": "T5", "new": "T6"}},
                          metrics=["mean_time_per_session"])
    with pytest.raises(S.AnalysisError, match="four different arms"):
        T.factorial_table(users, arms, {**DESIGN, "SessionAware": {"control": "T3", "treatment": "T6"}},
                          metrics=["mean_time_per_session"])
    with pytest.raises(S.AnalysisError, match="T9"):
        T.factorial_table(users, arms, {**DESIGN, "SessionAware": {"control": "T5", "treatment": "T9"}},
                          metrics=["mean_time_per_session"])


def test_factorial_srm_failure_marks_rows_invalid():
    users, arms = _cells()
    # 3 users in each of C, T3..T6 and none in the configured T7: 15 users, 2.5 expected per arm,
    # chi2 = 5 (0.5^2 / 2.5) + 2.5 = 3.0 with 5 dof, p = 0.70; a mismatch at srm_alpha 0.8, not at 0.001
    kw = dict(metrics=["mean_time_per_session"], expected_arms=["C", "T3", "T4", "T5", "T6", "T7"])
    t = T.factorial_table(users, arms, DESIGN, srm_alpha=0.8, **kw)
    assert t["srm_p_value"].iloc[0] == pytest.approx(stats.chi2.sf(3.0, 5))
    assert not t["valid"].any() and not t["srm_ok"].any()
    assert T.factorial_table(users, arms, DESIGN, **kw)["valid"].all()


def test_effects_table_carries_the_ratio_interval():
    rng = np.random.default_rng(4)
    arms = pd.Series(np.repeat(["C", "T1"], 300), index=pd.Index(range(600), name="user"))
    y = np.concatenate([rng.gamma(1.0, 2.0, 300), rng.gamma(1.0, 16.0, 300)])
    users = pd.DataFrame({"mean_time_per_session": y}, index=arms.index)
    row = T.effects_table(users, arms, metrics=["mean_time_per_session"]).iloc[0]
    r = S.fieller_samples(y[300:], y[:300])
    assert row["lower_ratio"] == pytest.approx(100 * r.lower) and row["upper_ratio"] == pytest.approx(100 * r.upper)
    assert row["significant_ratio"] == row["significant"]
    # wider than the course's, and shifted up: the effect is far from 0
    assert row["upper_ratio"] - row["lower_ratio"] > row["upper"] - row["lower"]
    assert row["upper_ratio"] > row["upper"]


# ----------------------------------------------------------------------- the cap's share

def test_capped_shares_join_episodes_to_arms_by_user():
    # user 1 (C) plays 3 episodes, 1 capped; user 2 (T1) 2 episodes, both capped; user 3 (C) 1, capped
    stats_ = pd.DataFrame({"user": [1, 2, 1, 3, 2, 1], "truncated": [0, 1, 1, 1, 1, 0]})
    arms = pd.Series({1: "C", 2: "T1", 3: "C", 4: "T2"})
    out = T.capped_shares(stats_, arms, {"C": "Random", "T1": "Sticky"})
    assert list(out.index) == ["C", "T1"] and list(out["name"]) == ["Random", "Sticky"]
    assert out.loc["C", "episodes"] == 4 and out.loc["C", "capped"] == 2 and out.loc["C", "capped_share"] == 0.5
    assert out.loc["T1", "capped_share"] == 1.0
    with pytest.raises(S.AnalysisError, match="no arm"):
        T.capped_shares(pd.DataFrame({"user": [9], "truncated": [0]}), arms)
    with pytest.raises(S.AnalysisError, match="truncated"):
        T.capped_shares(pd.DataFrame({"user": [1]}), arms)
