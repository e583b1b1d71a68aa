"""The experiment's decisions that need no simulator: settings, log integrity, promotion."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.ab import stats as S
from training.ab import tables as T
from training.ab import users as U
from training.ab import play
from training.registry import promotion
from training.jobs import configs
from training.errors import JobError


def test_settings_quick_and_overrides():
    cfg = configs.load_experiment()
    assert cfg.arms["C"] == "random" and not cfg.quick
    quick = configs.load_experiment(quick=True, episodes=123, seed=5)
    assert quick.quick and quick.world == "sim/config/small.yml"
    assert quick.collect_episodes == quick.ab_episodes == 123
    assert quick.seed == 5
    # quick keeps what it does not override, and never deploys small-world lists
    assert quick.models["control"].config == cfg.models["control"].config
    assert cfg.promotion.deploy == {"champion": "botify-champion-lists", "baseline": "botify-baseline-lists"}
    assert quick.promotion.deploy is None and quick.promotion.metric == cfg.promotion.metric
    # priority: a -P value over the quick overlay over the YAML
    assert configs.load_experiment(quick=True).ab_episodes == 900
    assert configs.load_experiment(world="sim/config/env.yml", quick=True).world == "sim/config/env.yml"


def test_deploy_names_bentoml_models_and_refuses_an_unknown_role_before_exporting(tmp_path, monkeypatch):
    """deploy exports each role's version into the BentoML model its config names (the
    export itself, with lineage, is tested in tests/training/test_training_registry.py)."""
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    with pytest.raises(JobError, match="'nope'"):
        promotion.deploy({"nope": "botify-x-lists"}, {"champion": "1"})
    assert not (tmp_path / "bentoml" / "models").exists()   # nothing exported


def _bad(tmp_path, edit) -> dict:
    import yaml
    cfg = yaml.safe_load(open(configs.repo_path(configs.EXPERIMENT_CONFIG)))
    edit(cfg)
    p = tmp_path / "bad.yml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_settings_reject_bad_arms_naming_the_file_and_the_key(tmp_path):
    cases = [
        (lambda c: c["promotion"].update(policy="Greedy"), "promotion.policy must be one of ['Contextual', "
                                                           "'SessionAware'], got 'Greedy'"),
        (lambda c: c["promotion"].update(effect="headline"), "promotion.effect must be one of ['model']"),
        (lambda c: c["promotion"].update(correction="bonferroni"), "promotion.correction must be one of"),
        (lambda c: c["ab"]["factorial"]["SessionAware"].update(treatment="T9"), "ab.factorial.SessionAware.treatment"),
        (lambda c: c["ab"]["factorial"].pop("Contextual"), "exactly two policies"),
        (lambda c: c["ab"]["factorial"]["Contextual"].update(treatment="T6"), "four different arms"),
        (lambda c: c["ab"].update(factorial={"A": {"old": "T3", "new": "T4"}, "B": {"old": "T5", "new": "T6"}}),
         "[control, treatment]"),
        (lambda c: c["ab"].pop("factorial"), "ab.factorial"),
        (lambda c: c["ab"].update(headline=["T6", "T8"]), "ab.headline/contrasts must be pairs of arms"),
        (lambda c: c["ab"]["arms"].update(T7="nope"), "ab.arms.T7 must be a recommender of ab.recommenders"),
        (lambda c: c["days"]["ab"].update(episodes=0), "days.ab.episodes must be an integer >= 10, got 0"),
        (lambda c: c["models"].update(control={"config": "training/config/nope.yml"}), "nope.yml"),
        (lambda c: c["analysis"].update(alpha=2), "analysis.alpha must be a number in"),
    ]
    for edit, message in cases:
        with pytest.raises(JobError) as err:
            configs.load_experiment(_bad(tmp_path, edit))
        assert message in str(err.value)
        assert str(err.value).startswith(f"experiment config {tmp_path / 'bad.yml'}: ")
    with pytest.raises(JobError, match="not found"):
        configs.load_experiment(tmp_path / "missing.yml")


def test_default_settings_are_the_2x2_beside_the_references():
    cfg = configs.load_experiment()
    rec = {a: cfg.recommenders[r] for a, r in cfg.arms.items()}
    design = cfg.design.factorial
    # the four cells: each policy over each model's lists, nothing else different
    for policy, kind in (("Contextual", "contextual"), ("SessionAware", "session_aware")):
        for lists in ("control", "treatment"):
            spec = rec[design[policy][lists]]
            assert spec["kind"] == kind and spec["i2i"] == "{%s_i2i}" % lists
        a, b = (dict(rec[design[policy][lv]]) for lv in ("control", "treatment"))
        a.pop("i2i"), b.pop("i2i")
        assert a == b
    assert {rec[a]["kind"] for a in ("C", "T1", "T2")} == {"random", "sticky_artist", "toppop"}
    assert cfg.design.headline == (design["SessionAware"]["treatment"], design["Contextual"]["control"])
    assert cfg.promotion.policy == "SessionAware"


def _log(n_sessions: int, steps: int):
    rows, ts = [], 0
    for s in range(n_sessions):
        for i in range(steps):
            rows.append({"message": "next", "timestamp": ts, "user": s, "track": i, "time": 1.0, "latency": 0.0,
                         "recommendation": i + 1, "experiments": {}}); ts += 1
        rows.append({"message": "last", "timestamp": ts, "user": s, "track": steps, "time": 0.5, "latency": 0.0,
                     "recommendation": None, "experiments": {}}); ts += 1
    return pd.DataFrame(rows)


def test_check_log_catches_truncation(tmp_path):
    stats = pd.DataFrame({"user": [0, 1, 2], "steps": [3, 3, 3], "reward": 1.0, "time": 2.0})
    play.check_log(_log(3, 3), stats, tmp_path)                       # exact: passes
    with pytest.raises(JobError, match="truncated"):
        play.check_log(_log(3, 3).iloc[:-1], stats, tmp_path)         # the last line lost
    with pytest.raises(JobError, match="truncated"):
        play.check_log(_log(2, 3), stats, tmp_path)                   # a whole session lost


DESIGN = {"Contextual": {"control": "T3", "treatment": "T4"}, "SessionAware": {"control": "T5", "treatment": "T6"}}
LABELS = {"T3": "Contextual-control", "T4": "Contextual-treatment", "T5": "SessionAware-control",
          "T6": "SessionAware-treatment"}


def _factorial(model_effect_sa: float, policy_effect: float = 3.0, n=400, srm_broken=False, seed=0,
               model_effect_ctx: float = 0.0):
    """Users whose mean is 2 (+ policy_effect under SessionAware) (+ the model effect under its policy)."""
    rng = np.random.default_rng(seed)
    means = {"C": 2.0, "T3": 2.0, "T4": 2.0 + model_effect_ctx, "T5": 2.0 + policy_effect,
             "T6": 2.0 + policy_effect + model_effect_sa}
    arms, y = [], []
    for a, m in means.items():
        k = n // 2 if (srm_broken and a == "T6") else n
        arms += [a] * k
        y += list(rng.normal(m, 1.0, k))
    idx = pd.Index(range(len(y)), name="user")
    users = pd.DataFrame({"mean_time_per_session": y}, index=idx)
    return T.factorial_table(users, pd.Series(arms, index=idx), DESIGN, metrics=["mean_time_per_session"],
                             labels=LABELS, headline=("T6", "T3"))


PROMO = {"effect": "model", "policy": "SessionAware", "metric": "mean_time_per_session", "correction": "holm"}


def test_decide_promotes_on_the_model_effect_only():
    ok, why = promotion.decide(_factorial(1.0), PROMO)
    assert ok and "model effect under SessionAware" in why
    assert "SessionAware-treatment (T6) vs SessionAware-control (T5)" in why and "Holm p" in why
    # a huge policy effect (and so a huge headline) with no model effect promotes nothing
    f = _factorial(0.0, policy_effect=10.0, seed=1)
    assert f.set_index("family").loc["headline", "significant_holm"]
    ok, why = promotion.decide(f, PROMO)
    assert not ok and "not significant" in why
    ok, why = promotion.decide(_factorial(-1.0), PROMO)
    assert not ok and "worse" in why
    ok, why = promotion.decide(_factorial(1.0, srm_broken=True), PROMO)
    assert not ok and "sample-ratio" in why
    ok, why = promotion.decide(_factorial(1.0), {**PROMO, "metric": "time"})
    assert not ok and "no model effect" in why
    # the model effect under the other policy does not decide
    ok, _ = promotion.decide(_factorial(0.0, model_effect_ctx=2.0), PROMO)
    assert not ok
    ok, _ = promotion.decide(_factorial(0.0, model_effect_ctx=2.0), {**PROMO, "policy": "Contextual"})
    assert ok


def test_decide_uses_holm_across_the_model_effect_family():
    # raw p just under 5% for the model effect under SessionAware: Holm over the family of two
    # doubles the smaller p when the other one is larger, so the raw verdict and Holm's can differ
    f = _factorial(0.0, seed=1)
    r = f[(f.family == "model") & (f.given == "SessionAware")].iloc[0].copy()
    fam = f[f.family == "model"]
    assert r["p_holm"] == pytest.approx(max(S.holm(fam["p_value"].to_numpy())[fam["given"] == "SessionAware"]))
    g = f.copy()
    sa = (g.family == "model") & (g.given == "SessionAware")
    g.loc[sa, ["p_value", "p_holm", "effect"]] = [0.03, 0.06, 10.0]
    g.loc[sa, "significant"] = True
    g.loc[sa, "significant_holm"] = False
    assert not promotion.decide(g, PROMO)[0]
    assert promotion.decide(g, {**PROMO, "correction": "none"})[0]


NI = {**PROMO, "test": "non_inferiority", "margin": 10}


def test_non_inferiority_promotes_what_is_ahead_unless_it_may_be_worse_than_the_margin():
    """The daily loop's rule: a challenger ahead on the estimate whose CI's lower bound stays
    above -margin is promoted, significant or not; superiority would keep the champion."""
    f = _factorial(0.0, seed=1)
    sa = (f.family == "model") & (f.given == "SessionAware")

    def model_effect(effect: float, lower: float) -> pd.DataFrame:
        g = f.copy()
        g.loc[sa, ["effect", "lower"]] = [effect, lower]
        g.loc[sa, "significant"] = lower > 0
        g.loc[sa, "significant_holm"] = False
        return g

    ok, why = promotion.decide(model_effect(3.4, -8.5), NI)  # the loop's day 6 of stop 8
    assert ok and "non-inferiority" in why and "-8.5% > -10%" in why
    assert not promotion.decide(model_effect(3.4, -8.5), PROMO)[0]
    ok, why = promotion.decide(model_effect(3.4, -12.0), NI)
    assert not ok and "worse by more than 10%" in why
    ok, why = promotion.decide(model_effect(-1.0, -9.0), NI)
    assert not ok and "not ahead" in why
    ok, why = promotion.decide(_factorial(1.0, srm_broken=True), NI)
    assert not ok and "sample-ratio" in why
    assert "non-inferiority" in promotion.rule(NI) and "above -10%" in promotion.rule(NI)


def test_rule_says_what_decides():
    text = promotion.rule(PROMO)
    assert "under SessionAware" in text and "Holm across the model-effect family" in text
    assert "never the policy effect or the seed's headline" in text


def test_decide_on_a_named_pair_of_arms():
    # the daily loop names the model effect by its two arms in an effects table (its own Holm family)
    rng = np.random.default_rng(0)
    n = 400
    arms = pd.Series(np.repeat(["C", "T3", "T4"], n), index=pd.Index(range(3 * n), name="user"))
    y = np.concatenate([rng.normal(2, 1, n), rng.normal(2, 1, n), rng.normal(3, 1, n)])
    table = T.effects_table(pd.DataFrame({"mean_time_per_session": y}, index=arms.index), arms,
                            metrics=["mean_time_per_session"], contrasts=[("T4", "T3")],
                            labels={"T3": "SA × champion", "T4": "SA × challenger"})
    pair = {"treatment": "T4", "baseline": "T3", "metric": "mean_time_per_session", "correction": "holm"}
    ok, why = promotion.decide(table, pair)
    assert ok and "SA × challenger (T4) vs SA × champion (T3)" in why and "ratio CI" in why
    ok, why = promotion.decide(table, {**pair, "baseline": "T9"})
    assert not ok and "no row T4 vs T9" in why


def test_the_container_checks_table_is_the_experiments_table_without_latency():
    """container/test.py (make container-test, not in CI) compares the experiment's A/B table
    of a day served by a process and by a container: its table helper must keep calling
    the experiment's analysis as it is (it once unpacked a tuple the analysis no longer returns)."""
    from container.test import table
    design = configs.load_experiment().design
    rng = np.random.default_rng(0)
    rows, ts = [], 0
    for user in range(280):
        arm = sorted(design.arms)[user % len(design.arms)]
        for i in range(3):
            ts += 1
            rows.append({"message": "next" if i < 2 else "last", "timestamp": ts, "user": user, "track": i,
                         "time": float(rng.random()), "latency": 0.001, "recommendation": i + 1 if i < 2 else None,
                         "experiments": {design.experiment: arm}})
    t = table(pd.DataFrame(rows), design)
    assert len(t) and not set(t["metric"]) & set(U.LATENCY_METRICS)
    assert "mean_time_per_session" in set(t["metric"])
