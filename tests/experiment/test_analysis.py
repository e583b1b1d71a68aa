"""The A/B statistics against values computed by hand (the arithmetic is in the comments)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from training.ab import stats as S
from training.ab import tables as T
from training.ab import users as U
from training.ab.references import headroom_share


def ev(user, message, track, time, ts, latency=0.01, exps=None):
    return {"message": message, "timestamp": ts, "user": user, "track": track, "time": time,
            "latency": latency, "recommendation": None if message == "last" else track + 1,
            "experiments": exps or {}}


# ------------------------------------------------------------------ Welch (hand-computed)

def test_welch_matches_hand_computation():
    # treatment [1,2,3,4]: mean 2.5, var (2.25+.25+.25+2.25)/3 = 5/3, n 4 -> a = 5/12
    # control [2,4,6,8,10]: mean 6, var (16+4+0+4+16)/4 = 10, n 5 -> b = 2
    # se = sqrt(5/12 + 2) = sqrt(29/12) = 1.554563
    # dof = (29/12)^2 / ((5/12)^2/3 + 2^2/4) = 5.840278 / 1.057870 = 5.520788
    w = S.welch_samples([1, 2, 3, 4], [2, 4, 6, 8, 10])
    assert w.diff == pytest.approx(-3.5)
    assert w.se == pytest.approx(math.sqrt(29 / 12))
    assert w.dof == pytest.approx((29 / 12) ** 2 / ((5 / 12) ** 2 / 3 + 1.0), rel=1e-12)
    assert w.dof == pytest.approx(5.520788, abs=1e-6)
    q = stats.t.ppf(0.975, w.dof)          # between t(6)=2.447 and t(5)=2.571: 2.4993
    assert q == pytest.approx(2.4993, abs=1e-3)
    assert w.lower == pytest.approx(-3.5 - q * math.sqrt(29 / 12))
    assert w.upper == pytest.approx(-3.5 + q * math.sqrt(29 / 12))
    # and it is scipy's Welch test, an independent implementation
    ref = stats.ttest_ind([1, 2, 3, 4], [2, 4, 6, 8, 10], equal_var=False)
    assert w.p_value == pytest.approx(ref.pvalue)
    assert w.significant == (w.upper < 0 or w.lower > 0)


def test_welch_significance_is_ci_excluding_zero():
    far = S.welch_samples([10, 11, 12, 13], [1, 2, 3, 4])
    assert far.significant and far.lower > 0 and far.p_value < 0.05
    near = S.welch_samples([1, 2, 3, 4.5], [1, 2, 3, 4])
    assert not near.significant and near.lower < 0 < near.upper and near.p_value > 0.05


def test_welch_degenerate_inputs():
    assert math.isnan(S.welch_samples([1.0], [1.0, 2.0]).p_value)      # one user: no variance
    same = S.welch_samples([2, 2, 2], [2, 2])
    assert same.p_value == 1.0 and not same.significant


# ------------------------------------------------------------------------------- Holm

def test_holm_hand_computed():
    # sorted: .005*4 = .02, .01*3 = .03, .03*2 = .06, .04*1 = .04 -> monotone .06
    adj = S.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_nan():
    adj = S.holm([0.5, float("nan"), 0.9])
    # family of 2: .5*2 = 1.0, .9*1 -> max(1.0, .9) = 1.0
    assert adj[0] == 1.0 and math.isnan(adj[1]) and adj[2] == 1.0


# -------------------------------------------------------------------------------- SRM

def test_srm_hand_computed():
    assert S.srm_test({"C": 500, "T1": 500}) == (0.0, 1.0)
    chi2, p = S.srm_test({"C": 550, "T1": 450})        # 2 * 50^2/500 = 10, 1 dof
    assert chi2 == pytest.approx(10.0) and p == pytest.approx(0.0015654, rel=1e-4)
    chi2, p = S.srm_test({"C": 100, "T1": 100, "T2": 130})  # expected 110: (100+100+400)/110
    assert chi2 == pytest.approx(600 / 110)
    assert p == pytest.approx(math.exp(-chi2 / 2))          # chi-square with 2 dof
    chi2, p = S.srm_test({"C": 300, "T1": 100}, weights={"C": 3, "T1": 1})
    assert chi2 == pytest.approx(0.0)


# ------------------------------------------------------------------------------ CUPED

def test_cuped_removes_a_planted_covariate_exactly():
    # y = 2x exactly -> theta = 2, y - 2(x - 2.5) = 5 for every user
    x = pd.Series([1.0, 2.0, 3.0, 4.0], index=[10, 11, 12, 13])
    y = 2 * x
    adj, theta = S.cuped(y, x)
    assert theta == pytest.approx(2.0)
    np.testing.assert_allclose(adj.to_numpy(), [5.0, 5.0, 5.0, 5.0])


def test_cuped_keeps_users_without_covariate_and_reduces_variance():
    rng = np.random.default_rng(7)
    n = 4000
    users = pd.Index(np.arange(n), name="user")
    x = pd.Series(rng.normal(0, 1, n), index=users)
    treat = pd.Series(np.where(np.arange(n) % 2 == 0, "C", "T1"), index=users)
    # planted: y = 3 + 2x + noise(sd .5) + 0.1 effect for T1. Var(y) ~ 4.25, residual .25:
    # expected variance reduction 1 - .25/4.25 = 0.941 among users with the covariate
    y = 3 + 2 * x + rng.normal(0, 0.5, n) + 0.1 * (treat == "T1")
    metrics = pd.DataFrame({"mean_time_per_session": y})
    cov = pd.DataFrame({"mean_time_per_session": x})
    t = T.effects_table(metrics, treat, metrics=["mean_time_per_session"], covariates=cov)
    row = t.iloc[0]
    assert row["variance_reduction"] == pytest.approx(0.941, abs=0.02)
    assert row["cuped_covered"] == 1.0
    # the CUPED CI is ~4x narrower and still covers the planted effect of 0.1 (in % of C)
    c_mean = row["control_mean"]
    assert row["cuped_lower"] < 100 * 0.1 / c_mean < row["cuped_upper"]
    assert row["cuped_significant"] and not row["significant"]
    # half the users without history: they keep their raw value, reduction is smaller
    cov_half = cov.iloc[: n // 2]
    adj, theta = S.cuped(metrics["mean_time_per_session"], cov_half["mean_time_per_session"])
    assert theta == pytest.approx(2.0, abs=0.05)
    pd.testing.assert_series_equal(adj.iloc[n // 2:], y.iloc[n // 2:].astype(float), check_names=False)
    t2 = T.effects_table(metrics, treat, metrics=["mean_time_per_session"], covariates=cov_half)
    assert 0.3 < t2.iloc[0]["variance_reduction"] < row["variance_reduction"]
    assert t2.iloc[0]["cuped_covered"] == pytest.approx(0.5)


# --------------------------------------------------------------- sessionize -> user metrics

def test_user_metrics_of_a_hand_written_log():
    rows = [
        # user 1, session 0: chosen 10 (1.0), recommended 11 (0.5), 12 (0.3) closes it
        ev(1, "next", 10, 1.0, 1000, 0.01), ev(1, "next", 11, 0.5, 1001, 0.02), ev(1, "last", 12, 0.3, 1002, 0.01),
        # user 2 interleaved in time
        ev(2, "next", 30, 1.0, 1001, 0.04), ev(2, "last", 31, 0.2, 1003, 0.02),
        # user 1, session 1: chosen 20, recommended 21 (0.8)
        ev(1, "next", 20, 1.0, 1005, 0.02), ev(1, "last", 21, 0.8, 1006, 0.04),
    ]
    u = U.user_metrics(pd.DataFrame(rows))
    one = u.loc[1]
    assert one["sessions"] == 2 and one["tracks"] == 5
    assert one["time"] == pytest.approx(3.6) and one["rec_time"] == pytest.approx(1.6)
    assert one["mean_time_per_session"] == pytest.approx(1.8)
    assert one["mean_rec_time_per_session"] == pytest.approx(0.8)
    assert one["mean_tracks_per_session"] == pytest.approx(2.5)
    assert one["mean_request_latency"] == pytest.approx(0.10 / 5)
    two = u.loc[2]
    assert (two["sessions"], two["tracks"], two["time"], two["rec_time"]) == (1, 2, pytest.approx(1.2), pytest.approx(0.2))


def test_empty_log_is_a_clear_error():
    with pytest.raises(S.AnalysisError, match="empty"):
        U.user_metrics(pd.DataFrame(columns=["message", "timestamp", "user", "track", "time", "latency"]))


def test_assign_arms_reads_the_logged_map_and_rejects_a_user_in_two_arms():
    rows = [ev(1, "next", 1, 1.0, 1, exps={"AB": "C", "AA": "T1"}), ev(2, "next", 1, 1.0, 2, exps={"AB": "T1"})]
    arms = U.assign_arms(pd.DataFrame(rows), "AB")
    assert arms.to_dict() == {1: "C", 2: "T1"}
    with pytest.raises(S.AnalysisError, match="no event carries"):
        U.assign_arms(pd.DataFrame(rows), "NOPE")
    rows.append(ev(1, "last", 1, 0.5, 3, exps={"AB": "T1"}))
    with pytest.raises(S.AnalysisError, match="more than one arm"):
        U.assign_arms(pd.DataFrame(rows), "AB")


# ------------------------------------------------------------------------ the table

def _synthetic(n_per_arm: dict[str, int], means: dict[str, float], seed=0):
    rng = np.random.default_rng(seed)
    idx, arms, y = [], [], []
    u = 0
    for arm, n in n_per_arm.items():
        for _ in range(n):
            idx.append(u); arms.append(arm); y.append(rng.normal(means[arm], 1.0)); u += 1
    users = pd.DataFrame({"mean_time_per_session": y, "time": np.array(y) * 2}, index=pd.Index(idx, name="user"))
    return users, pd.Series(arms, index=users.index)


def test_effects_table_structure_effect_in_percent_and_contrasts():
    users, arms = _synthetic({"C": 300, "T1": 300, "T2": 300}, {"C": 2.0, "T1": 3.0, "T2": 2.0})
    t = T.effects_table(users, arms, experiment="AB", metrics=["time", "mean_time_per_session"],
                        labels={"C": "random", "T1": "sticky", "T2": "toppop"}, contrasts=[("T1", "T2")])
    assert list(t.columns) == list(T.TABLE_COLUMNS)
    assert list(zip(t["treatment"], t["control"])) == [("T1", "C")] * 2 + [("T2", "C")] * 2 + [("T1", "T2")] * 2
    r = t[(t.treatment == "T1") & (t.control == "C") & (t.metric == "mean_time_per_session")].iloc[0]
    yc = users.loc[arms == "C", "mean_time_per_session"]
    yt = users.loc[arms == "T1", "mean_time_per_session"]
    assert r["control_mean"] == pytest.approx(yc.mean()) and r["treatment_mean"] == pytest.approx(yt.mean())
    assert r["effect"] == pytest.approx(100 * (yt.mean() - yc.mean()) / yc.mean())
    w = S.welch_samples(yt, yc)
    assert r["lower"] == pytest.approx(100 * w.lower / yc.mean()) and r["upper"] == pytest.approx(100 * w.upper / yc.mean())
    assert r["significant"] and r["significant_holm"] and r["treatment_name"] == "sticky"
    t2 = t[(t.treatment == "T2") & (t.control == "C")]
    assert not t2["significant_holm"].any()
    # Holm over the whole table, never smaller than the raw p-value
    np.testing.assert_allclose(t["p_holm"], S.holm(t["p_value"]))       # no twin metric here
    assert (t["p_holm"] >= t["p_value"]).all()
    assert t["valid"].all() and t["srm_ok"].all()
    assert t["cuped_effect"].isna().all()          # no covariates given


def test_srm_failure_marks_every_row_invalid():
    users, arms = _synthetic({"C": 500, "T1": 380}, {"C": 2.0, "T1": 2.5})
    t = T.effects_table(users, arms, metrics=["mean_time_per_session"])
    assert t["srm_p_value"].iloc[0] < 0.001
    assert not t["valid"].any() and not t["srm_ok"].any()
    # an arm that lost every user is a mismatch too, not a silently missing row
    users, arms = _synthetic({"C": 200, "T1": 200}, {"C": 2.0, "T1": 2.0})
    t = T.effects_table(users, arms, metrics=["time"], expected_arms=["C", "T1", "T2"])
    assert not t["valid"].any()


def test_missing_control_or_unknown_contrast_arm_is_an_error():
    users, arms = _synthetic({"T1": 50, "T2": 50}, {"T1": 1.0, "T2": 1.0})
    with pytest.raises(S.AnalysisError, match="control arm 'C'"):
        T.effects_table(users, arms, metrics=["time"])
    users, arms = _synthetic({"C": 50, "T1": 50}, {"C": 1.0, "T1": 1.0})
    with pytest.raises(S.AnalysisError, match="'T7'"):
        T.effects_table(users, arms, metrics=["time"], contrasts=[("T7", "C")])


def test_headroom_share_of_numbers_and_columns():
    assert [headroom_share(v, 2.0, 8.0) for v in (2.0, 5.0, 8.0)] == [0.0, 0.5, 1.0]
    assert list(headroom_share(pd.Series([2.0, 5.0]), 2.0, 8.0)) == [0.0, 0.5]
    assert math.isnan(headroom_share(3.0, 2.0, 2.0))          # no gap: no share


def test_holm_counts_a_shifted_twin_metric_once():
    # mean_rec_time_per_session = mean_time_per_session - 1 per user: the same test, one family member
    users, arms = _synthetic({"C": 200, "T1": 200}, {"C": 2.0, "T1": 2.3})
    users["mean_rec_time_per_session"] = users["mean_time_per_session"] - 1
    t = T.effects_table(users, arms, metrics=["time", "mean_time_per_session", "mean_rec_time_per_session"])
    by = t.set_index("metric")
    assert by.loc["mean_rec_time_per_session", "p_value"] == pytest.approx(by.loc["mean_time_per_session", "p_value"])
    family = S.holm(by.loc[["time", "mean_time_per_session"], "p_value"])     # a family of two, not three
    assert by.loc["mean_time_per_session", "p_holm"] == pytest.approx(family[1])
    assert by.loc["mean_rec_time_per_session", "p_holm"] == pytest.approx(family[1])


def test_latency_rows_are_their_own_holm_family():
    users, arms = _synthetic({"C": 200, "T1": 200}, {"C": 2.0, "T1": 2.3})
    users["mean_request_latency"] = np.random.default_rng(1).exponential(0.01, len(users))
    t = T.effects_table(users, arms, metrics=["time", "mean_time_per_session", "mean_request_latency"]).set_index("metric")
    outcome = S.holm(t.loc[["time", "mean_time_per_session"], "p_value"])
    np.testing.assert_allclose(t.loc[["time", "mean_time_per_session"], "p_holm"], outcome)
    assert t.loc["mean_request_latency", "p_holm"] == pytest.approx(t.loc["mean_request_latency", "p_value"])
