"""The experiment's decisions that need no simulator: settings, log integrity, promotion."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training import analysis as A
from training import play, promotion, settings
from training.errors import JobError


def test_settings_quick_and_overrides():
    cfg = settings.load_settings(settings.DEFAULT_CONFIG)
    assert cfg["ab"]["arms"]["C"] == "random" and not cfg["quick"]
    quick = settings.load_settings(settings.DEFAULT_CONFIG, quick=True, episodes=123, seed=5)
    assert quick["quick"] and quick["world"] == "sim/config/small.yml"
    assert quick["days"]["collect"]["episodes"] == quick["days"]["ab"]["episodes"] == 123
    assert quick["seed"] == 5
    # quick keeps what it does not override, and never deploys small-world lists
    assert quick["models"]["control"]["config"] == cfg["models"]["control"]["config"]
    assert cfg["promotion"]["deploy"]["treatment"] == "botify-i2i-treatment"
    assert quick["promotion"]["deploy"] is None and quick["promotion"]["metric"] == cfg["promotion"]["metric"]


def test_deploy_names_bentoml_models_and_refuses_an_unknown_role_before_exporting(tmp_path, monkeypatch):
    """deploy exports each role's version into the BentoML model its config names (the
    export itself, with lineage, is tested in tests/training/test_training_registry.py)."""
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    with pytest.raises(JobError, match="'nope'"):
        promotion.deploy({"nope": "botify-i2i-x"}, {"treatment": "1"})
    assert not (tmp_path / "bentoml" / "models").exists()   # nothing exported


def test_settings_reject_bad_arms(tmp_path):
    import yaml
    cfg = yaml.safe_load(open(settings.REPO / settings.DEFAULT_CONFIG))
    cfg["promotion"]["treatment"] = "T9"
    p = tmp_path / "bad.yml"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(JobError, match="promotion arms"):
        settings.load_settings(p)
    with pytest.raises(JobError, match="not found"):
        settings.load_settings(tmp_path / "missing.yml")


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


def test_user_level_means_average_users_not_episodes():
    # user 0 has two episodes (time 2 and 4 -> mean 3), user 1 one (time 9): (3 + 9) / 2 = 6
    stats = pd.DataFrame({"user": [0, 0, 1], "reward": [1.0, 3.0, 8.0], "time": [2.0, 4.0, 9.0]})
    assert play.user_level_means(stats) == {"mean_time_per_session": 6.0, "mean_rec_time_per_session": 5.0}


def _table(effect_t5: float, n=400, srm_broken=False, seed=0):
    rng = np.random.default_rng(seed)
    sizes = {"C": n, "T3": n, "T5": n // 2 if srm_broken else n}
    arms, y = [], []
    for a, k in sizes.items():
        arms += [a] * k
        y += list(rng.normal(2.0 + (effect_t5 if a == "T5" else 0.0), 1.0, k))
    idx = pd.Index(range(len(y)), name="user")
    users = pd.DataFrame({"mean_time_per_session": y}, index=idx)
    return A.effects_table(users, pd.Series(arms, index=idx), metrics=["mean_time_per_session"],
                           contrasts=[("T5", "T3")], labels={"T5": "SessionAware", "T3": "Contextual"})


PROMO = {"treatment": "T5", "baseline": "T3", "metric": "mean_time_per_session", "correction": "holm"}


def test_decide_promotes_only_a_significant_win_with_srm_passing():
    ok, why = promotion.decide(_table(1.0), PROMO)
    assert ok and "SessionAware (T5) vs Contextual (T3)" in why
    ok, why = promotion.decide(_table(0.0), PROMO)
    assert not ok and "not significant" in why
    ok, why = promotion.decide(_table(-1.0), PROMO)
    assert not ok and "worse" in why
    ok, why = promotion.decide(_table(1.0, srm_broken=True), PROMO)
    assert not ok and "sample-ratio" in why
    ok, why = promotion.decide(_table(1.0), {**PROMO, "metric": "time"})
    assert not ok and "no row" in why
