"""The loop's pieces without a service: its config checks, the day's arms, the analysis and
decision on a made-up log, the references reader, the trend and the single play-a-day path."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from training.ab.analysis import analyse_log
from training.ab.references import Reference, ReferencesError, load_references
from training.errors import JobError
from training.jobs import challengers as C
from training.jobs import loop_steps as L
from training.jobs.configs import LOOP_CONFIG, load_loop
from training.registry.promotion import decide
from training.reports import trend as TR

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, **changes) -> Path:
    cfg = yaml.safe_load((REPO / LOOP_CONFIG).read_text())
    for dotted, value in changes.items():
        node = cfg
        *path, last = dotted.split(".")
        for k in path:
            node = node[k]
        node[last] = value
    p = tmp_path / "loop.yml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return p


def test_default_and_quick_configs_load():
    cfg = load_loop()
    assert cfg.days == 7 and cfg.window == 7 and cfg.register == "botify-i2i"
    assert cfg.promotion.deploy == {"champion": "botify-champion-lists"}
    # the product: the artist learner's lists served by the exploring policy (its table ships with them)
    assert [c.learner for c in cfg.challengers] == ["artist"] and cfg.bootstrap.learner == "artist"
    assert cfg.policies[cfg.promotion.policy]["kind"] == "exploring"
    quick = load_loop(quick=True, days=2, window=1, episodes=100, seed=7)
    assert (quick.days, quick.window, quick.episodes, quick.cold_start_episodes, quick.seed) == (2, 1, 100, 100, 7)
    assert quick.register == "botify-i2i-small" and quick.promotion.deploy is None


@pytest.mark.parametrize("changes, message", [
    ({"days": 0}, "days must be an integer >= 1, got 0"),
    ({"challengers": []}, "challengers must be a non-empty list"),
    ({"challengers": [{"name": "x", "config": "training/config/nope.yml"}]}, "nope.yml not found"),
    ({"challengers": [{"name": "x", "config": "training/config/seed.yml", "overrides": {"embedding_dims": 3}}]},
     "embedding_dims"),
    ({"challengers": [{"name": "x", "config": "training/config/seed.yml"}] * 2}, "unique names"),
    ({"service.policies": {"SessionAware": {"kind": "session_aware"}}}, "service.policies must be two policies"),
    ({"service.policies.Contextual": {"kind": "random"}}, "service.policies.Contextual must be a recommender of kind"),
    ({"service.policies.Contextual": {"kind": "contextual", "i2i": "x.jsonl"}}, "without `i2i`"),
    ({"promotion.policy": "Nope"}, "promotion.policy must be one of ['Contextual', 'SessionAware'], got 'Nope'"),
    ({"promotion.correction": "bonferroni"}, "promotion.correction must be one of ['holm', 'none']"),
    ({"promotion.test": "bayes"}, "promotion.test must be one of"),
    ({"promotion.margin": 0}, "promotion.margin must be a percentage"),
    ({"promotion.margin": "ten"}, "promotion.margin must be a percentage"),
    ({"select.mode": "best"}, "select.mode must be one of ['max', 'min']"),
    ({"select.holdout": 1.5}, "select.holdout must be a number in [0, 1)"),
    ({"promotion.deploy": {"champion": "data/i2i/treatment.jsonl", "control": "x"}}, "BENTOML_MODEL_NAME"),
    ({"world": "sim/config/nope.yml"}, "world must be an existing file (e.g. sim/config/env.yml), "
                                       "got 'sim/config/nope.yml'"),
    ({"references.episodes": 1}, "references.episodes must be an integer >= 2"),
])
def test_bad_configs_fail_naming_the_file_and_the_key(tmp_path, changes, message):
    path = _config(tmp_path, **changes)
    with pytest.raises(JobError) as err:
        load_loop(path)
    assert message in str(err.value) and str(err.value).startswith(f"loop config {path}: ")


def test_overrides_win_over_quick_over_the_yaml_and_are_checked():
    assert load_loop(quick=True).days == 3 and load_loop(quick=True, days=5).days == 5
    with pytest.raises(JobError, match="window must be an integer >= 1, got -2"):
        load_loop(window=-2)
    with pytest.raises(JobError, match="not found"):
        load_loop("training/config/missing.yml")


def _served(v: str) -> L.Served:
    return L.Served(v, "seed", (0,), Path(f"/lists/v{v}.jsonl"))


def test_the_day_is_a_2x2_of_policy_by_lists_plus_random():
    cfg = load_loop(quick=True)
    arms, recs = L.ab_layout(cfg, _served("3"), _served("5"))
    assert [(a.arm, a.label, a.version) for a in arms] == [
        ("C", "Random (C)", None), ("T1", "Contextual × champion", "3"), ("T2", "Contextual × challenger", "5"),
        ("T3", "SessionAware × champion", "3"), ("T4", "SessionAware × challenger", "5")]
    assert recs["sessionaware_challenger"] == {**cfg.policies["SessionAware"], "i2i": "/lists/v5.jsonl"}
    assert recs["contextual_champion"]["i2i"] == "/lists/v3.jsonl"
    assert L.design(arms, cfg, "LOOP_DAY1").factorial == {"Contextual": {"champion": "T1", "challenger": "T2"},
                                                          "SessionAware": {"champion": "T3", "challenger": "T4"}}


def _day_log(arm_means: dict[str, float], experiment: str, users_per_arm: int = 60, seed: int = 0) -> pd.DataFrame:
    """A made-up event log: each user one session whose length follows its arm's mean."""
    rng = np.random.default_rng(seed)
    rows, ts, user = [], 0, 0
    for arm, mean in arm_means.items():
        for _ in range(users_per_arm):
            n = max(1, int(rng.poisson(mean)))
            for i in range(n + 1):
                ts += 1
                rows.append({"message": "last" if i == n else "next", "timestamp": ts, "user": user, "track": i,
                             "time": 1.0, "latency": 0.001, "recommendation": None, "experiments": {experiment: arm}})
            user += 1
    return pd.DataFrame(rows)


class _Day:
    """What the loop reads of a day's analysis: the 2x2's model effects, the decision, the arms."""

    def __init__(self, events: pd.DataFrame, arms: list, cfg, experiment: str, oracle: float) -> None:
        ref = Reference("oracle", oracle, 0.0, oracle, 1.0)
        an = analyse_log(events, L.design(arms, cfg, experiment), references={"oracle": ref})
        self.table, self.arms = an.factorial, an.per_arm
        self.model_effects = {p: an.model_effect(p) for p in cfg.policy_names}
        self.promote, self.reason = decide(an.factorial, cfg.promotion.rule())


def test_analysis_promotes_by_the_model_effect_under_the_product_policy_only(tmp_path):
    cfg = load_loop(quick=True)
    assert cfg.promotion.rule() == {"policy": "SessionAware", "metric": "mean_time_per_session", "correction": "holm",
                             "test": "non_inferiority", "margin": 10.0}
    arms, _ = L.ab_layout(cfg, _served("3"), _served("5"))
    win = _day_log({"C": 2, "T1": 3, "T2": 3, "T3": 6, "T4": 12}, "LOOP_DAY1")
    an = _Day(win, arms, cfg, "LOOP_DAY1", oracle=20.0)
    assert an.promote and "SessionAware × challenger (T4) vs SessionAware × champion (T3)" in an.reason
    assert an.model_effects["SessionAware"]["lower"] > 0
    assert set(an.arms.index) == {"C", "T1", "T2", "T3", "T4"}
    assert an.arms.loc["C", "headroom"] == pytest.approx(0.0)
    assert an.arms.loc["T4", "headroom"] == pytest.approx(
        (an.arms.loc["T4", "mean"] - an.arms.loc["C", "mean"]) / (20.0 - an.arms.loc["C", "mean"]))
    # behind the champion: kept, whatever the rule
    behind = _day_log({"C": 2, "T1": 3, "T2": 3, "T3": 8, "T4": 6}, "LOOP_DAY1", seed=1)
    an = _Day(behind, arms, cfg, "LOOP_DAY1", oracle=20.0)
    assert not an.promote and an.reason.startswith("not promoted") and "not ahead" in an.reason
    # a large Contextual model effect does not decide: under SessionAware the challenger is behind
    ctx = _day_log({"C": 2, "T1": 2, "T2": 9, "T3": 8, "T4": 7}, "LOOP_DAY1", seed=2)
    an = _Day(ctx, arms, cfg, "LOOP_DAY1", oracle=20.0)
    assert an.model_effects["Contextual"]["lower"] > 0 and not an.promote
    # ahead by a little on a noisy day: non-inferiority promotes it, superiority would not
    close = _day_log({"C": 2, "T1": 3, "T2": 3, "T3": 8, "T4": 8.3}, "LOOP_DAY1", users_per_arm=100, seed=4)
    an = _Day(close, arms, cfg, "LOOP_DAY1", oracle=20.0)
    e = an.model_effects["SessionAware"]
    assert e["effect"] > 0 and -10 < e["lower"] < 0 and an.promote and "non-inferiority" in an.reason
    strict = load_loop(_config(tmp_path, **{"promotion.test": "superiority"}), quick=True)
    assert not _Day(close, arms, strict, "LOOP_DAY1", oracle=20.0).promote


def test_selection_uses_the_configured_figure():
    cfg = load_loop(quick=True)
    sel = cfg.select
    assert sel.holdout > 0 and sel.key == f"heldout.{sel.metric}"
    key = sel.key
    a = C.Candidate("a", "1", "r1", {key: 0.2, "test_mse": 0.1}, (0,))
    b = C.Candidate("b", "2", "r2", {key: 0.3, "test_mse": 0.2}, (0,))
    nan = C.Candidate("n", "4", "r4", {key: float("nan")}, (0,))
    assert C.select([a, b], sel, cfg.path) is b and C.select([nan, a], sel, cfg.path) is a
    with pytest.raises(JobError, match=f"select.metric '{sel.metric}' is not a figure of candidate `c`"):
        C.select([C.Candidate("c", "3", "r3", {"test_mse": 0.1}, (0,))], sel, cfg.path)


def test_split_by_user_keeps_every_line_once(tmp_path):
    src = tmp_path / "logs"
    src.mkdir()
    lines = {name: [json.dumps({"message": "next", "timestamp": i, "user": (i * 7 + k) % 50, "track": i})
                    for i in range(300)] for k, name in enumerate(["events-w1-1.jsonl", "events-w2-2.jsonl.1"])}
    for name, ls in lines.items():
        (src / name).write_text("\n".join(ls) + "\n")
    train, held = C.split_by_user(src, tmp_path / "train", tmp_path / "held", 0.2, seed=5)
    for name, ls in lines.items():
        t = (train / name).read_text().splitlines()
        h = (held / name).read_text().splitlines()
        assert sorted(t + h) == sorted(ls)
        assert [x for x in ls if x in set(t)] == t                 # each file's order kept
        assert not {json.loads(x)["user"] for x in t} & {json.loads(x)["user"] for x in h}
    held_users = {json.loads(x)["user"] for n in lines for x in (held / n).read_text().splitlines()}
    assert 3 <= len(held_users) <= 20                              # ~20% of 50 users
    again, held2 = C.split_by_user(src, tmp_path / "t2", tmp_path / "h2", 0.2, seed=5)
    assert all((held / n).read_text() == (held2 / n).read_text() for n in lines)   # seeded: the same split
    with pytest.raises(JobError, match="too small"):
        C.split_by_user(src, tmp_path / "t3", tmp_path / "h3", 0.0001, seed=5)


def test_offline_agreement_orders_figures_by_how_they_track_served_reward():
    served = pd.DataFrame([
        {"day": d, "lists": role, "version": "1", "served": s, "good": s * 2 + 1, "bad": -s, "snips_ess": s}
        for d, pair in enumerate([(5.0, 6.0), (6.0, 5.5), (7.0, 8.0)], start=1)
        for role, s in zip(("champion", "challenger"), pair)])
    agr = TR.offline_agreement(served)
    assert list(agr["figure"]) == ["good", "bad"]
    assert agr.loc[0, "spearman"] == pytest.approx(1.0) and agr.loc[0, "same_order"] == 1.0
    assert agr.loc[1, "spearman"] == pytest.approx(-1.0) and agr.loc[1, "same_order"] == 0.0
    assert TR.offline_agreement(pd.DataFrame()).empty


def test_references_read_ids_and_legacy_names(tmp_path):
    fig = {"reward": 1.0, "reward_se": 0.1, "time_per_session": 2.0, "headroom_share": 0.0}
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({"figures": {"Random": fig, "Oracle (upper bound)": {**fig, "headroom_share": 1.0},
                                              "SessionAnchor, catalog only (info)": {**fig, "headroom_share": 0.5}}}))
    refs = load_references(legacy)
    assert set(refs) == {"random", "oracle", "anchor_catalog"} and refs["anchor_catalog"].headroom_share == 0.5
    by_id = tmp_path / "ids.json"
    by_id.write_text(json.dumps({"figures": [{"id": "random", **fig}, {"id": "oracle", **fig},
                                             {"id": "anchor_ideal", **fig, "headroom_share": 0.8}]}))
    assert load_references(by_id)["anchor_ideal"].headroom_share == 0.8
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"figures": {"Random": fig}}))
    with pytest.raises(ReferencesError, match="no 'oracle' figure"):
        load_references(bad)


def test_trend_plot_table_and_goal(tmp_path):
    rows = []
    for day, sa in enumerate([0.3, 0.6, 0.8]):
        for label, h in (("Random (C)", 0.0), ("SessionAware × champion", sa)):
            m = 2 + 18 * h
            rows.append({"day": day, "arm": "x", "label": label, "policy": "", "lists": "", "version": "1",
                         "users": 50, "mean": m, "lower": m - 1, "upper": m + 1, "headroom": h,
                         "headroom_lower": h - 0.05, "headroom_upper": h + 0.05})
    trend = pd.DataFrame(rows)
    path = tmp_path / "refs.json"
    fig = {"reward": 1.0, "reward_se": 0.1}
    path.write_text(json.dumps({"figures": {
        "random": {**fig, "time_per_session": 2.0, "headroom_share": 0.0},
        "oracle": {**fig, "time_per_session": 20.0, "headroom_share": 1.0},
        "anchor_catalog": {**fig, "time_per_session": 11.0, "headroom_share": 0.5},
        "anchor_ideal": {**fig, "time_per_session": 17.0, "headroom_share": 0.83}}}))
    refs = {d: load_references(path) for d in (0, 1, 2)}
    g = TR.goal_check(trend, refs, "SessionAware × champion", 0.25)
    assert g == {"label": "SessionAware × champion", "target": 0.75, "value": 0.8, "mean": pytest.approx(16.4),
                 "day": 2, "met": True, "anchor_catalog": 0.5}
    assert not TR.goal_check(trend[trend["day"] < 2], refs, "SessionAware × champion", 0.25)["met"]
    # each day is read against its own references: a higher anchor_catalog on day 2 raises its goal
    higher = {**refs, 2: {**refs[2], "anchor_catalog": Reference("anchor_catalog", 1.0, 0.1, 16.0, 0.6)}}
    assert TR.goal_check(trend, higher, "SessionAware × champion", 0.25)["target"] == pytest.approx(0.85)
    png = TR.plot_trend(trend, refs, tmp_path / "trend.png", goal=g["target"])
    assert png.stat().st_size > 10_000
    md = TR.trend_markdown(trend)
    assert md.splitlines()[0] == "| day | Random (C) | SessionAware × champion |"
    assert "| 2 | 2.00 [1.00, 3.00] · 0.00 v1 | 16.40 [15.40, 17.40] · 0.80 v1 |" in md


def test_one_play_a_day_path():
    """Only training/ab/play.py builds the simulator's command line (`python -m sim.*`): collect,
    the experiment, the loop and the references all go through it."""
    offenders = []
    for f in sorted((REPO / "training").rglob("*.py")):
        if f == REPO / "training" / "ab" / "play.py":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.strip() in ("sim.run", "sim.calibrate", "-m sim.run", "-m sim.calibrate"):
                offenders.append(f"{f.name}: {node.value!r}")
    assert offenders == [], offenders


def test_the_decision_family_is_the_model_effects():
    """Holm for the promotion runs over the model effects of the primary metric (one per
    policy), not over every arm and metric of the table."""
    cfg = load_loop(quick=True)
    arms, _ = L.ab_layout(cfg, _served("3"), _served("5"))
    an = _Day(_day_log({"C": 2, "T1": 3, "T2": 4, "T3": 6, "T4": 8}, "LOOP_DAY1", seed=3), arms, cfg,
                       "LOOP_DAY1", oracle=20.0)
    t = an.table
    fam = t[t["treatment"].isin(["T2", "T4"]) & t["control"].isin(["T1", "T3"]) & (t["metric"] == cfg.analysis.primary_metric)]
    assert len(fam) == 2
    p = np.sort(fam["p_value"].to_numpy())
    assert np.allclose(np.sort(fam["p_holm"].to_numpy()), [min(1, 2 * p[0]), min(1, max(2 * p[0], p[1]))])
