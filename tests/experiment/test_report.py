"""The report's files: a table a machine can read back, Markdown a person can, a real PNG."""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.ab import tables as T
from training.reports import report as R


def _table():
    rng = np.random.default_rng(3)
    n = 200
    arms = pd.Series(np.tile(["C", "T1", "T2"], n), index=pd.Index(range(3 * n), name="user"))
    shift = arms.map({"C": 0.0, "T1": 1.0, "T2": 0.05})
    y = pd.Series(rng.normal(2, 1, 3 * n), index=arms.index) + shift
    users = pd.DataFrame({"mean_time_per_session": y, "time": 2 * y})
    return T.effects_table(users, arms, metrics=["mean_time_per_session", "time"],
                           labels={"C": "Random", "T1": "SessionAware", "T2": "Contextual"},
                           contrasts=[("T1", "T2")])


def test_table_files_round_trip(tmp_path):
    t = _table()
    csv, md = R.write_table(t, tmp_path)
    back = pd.read_csv(csv)
    assert list(back.columns) == list(t.columns) and len(back) == len(t)
    np.testing.assert_allclose(back["effect"], t["effect"])
    text = md.read_text().splitlines()
    assert text[0].startswith("| treatment_name | control_name | metric | effect")
    assert len(text) == 2 + len(t)
    assert "SessionAware | Contextual" in md.read_text()


def test_plot_is_a_png_with_one_panel_per_metric(tmp_path):
    p = R.plot_effects(_table(), tmp_path / "effects.png")
    head = p.read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_report_has_the_seed_shape(tmp_path):
    t = _table()
    plot = R.plot_effects(t, tmp_path / "effects.png")
    path = R.write_report(tmp_path / "report.md", table=t, plot=plot, arms={"C": "Random", "T1": "SessionAware"},
                          primary_metric="mean_time_per_session", headroom={"Random": 0.0, "SessionAware": 0.7},
                          means={"Random": 2.0, "SessionAware": 3.0}, oracle_mean=3.4,
                          decision="promoted version 3 to champion", details=["world: small"],
                          srm={"p_value": 0.5, "ok": True}, headline=t[t["control"] == "T2"])
    text = path.read_text()
    for part in ("### i. The idea", "### ii. Details", "### iii. Results", "![effects](effects.png)",
                 "promoted version 3 to champion", "| SessionAware | 3.000 | 0.700 |", "passed"):
        assert part in text


def _factorial():
    rng = np.random.default_rng(8)
    n = 150
    means = {"C": 2.0, "T3": 2.5, "T4": 4.0, "T5": 6.0, "T6": 16.0}
    arms = pd.Series(np.repeat(list(means), n), index=pd.Index(range(n * len(means)), name="user"))
    y = np.concatenate([rng.gamma(1.0, m, n) for m in means.values()])
    users = pd.DataFrame({"mean_time_per_session": y, "time": 3 * y}, index=arms.index)
    labels = {"C": "Random", "T3": "Contextual-control", "T4": "Contextual-treatment",
              "T5": "SessionAware-control", "T6": "SessionAware-treatment"}
    design = {"Contextual": {"control": "T3", "treatment": "T4"},
              "SessionAware": {"control": "T5", "treatment": "T6"}}
    return T.factorial_table(users, arms, design, metrics=["mean_time_per_session", "time"], labels=labels,
                             headline=("T6", "T3"))


def test_factorial_files_grid_and_plot(tmp_path):
    f = _factorial()
    csv, md = R.write_factorial(f, tmp_path)
    back = pd.read_csv(csv)
    assert list(back.columns) == list(T.FACTORIAL_COLUMNS) and len(back) == len(f) == 12
    assert "interaction: model effect under SessionAware vs under Contextual" in md.read_text()
    grid = R.factorial_grid(f, "mean_time_per_session").splitlines()
    assert grid[0].startswith("| policy / lists | control model's lists | treatment model's lists | model effect")
    model_sa = f[(f.metric == "mean_time_per_session") & (f.family == "model") & (f.given == "SessionAware")].iloc[0]
    assert grid[3].startswith("| SessionAware | ") and f"(`T6`, n = 150)" in grid[3]
    assert f"{model_sa['effect']:+.1f}%" in grid[3] and "ratio [" in grid[3] and "course [" in grid[3]
    assert grid[4].startswith("| policy effect (SessionAware vs Contextual) |") and "interaction" in grid[4]
    p = R.plot_factorial(f, tmp_path / "factorial.png", "mean_time_per_session")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_report_states_the_2x2_the_rule_and_the_capped_shares(tmp_path):
    t, f = _table(), _factorial()
    plot = R.plot_effects(t, tmp_path / "effects.png")
    fplot = R.plot_factorial(f, tmp_path / "factorial.png", "mean_time_per_session")
    rule = "promote when the model effect under SessionAware is significant after Holm"
    path = R.write_report(tmp_path / "report.md", table=t, plot=plot, arms={"C": "Random", "T1": "SessionAware"},
                          primary_metric="mean_time_per_session", headroom={"Random": 0.0, "SessionAware": 0.7},
                          means={"Random": 2.0, "SessionAware": 3.0}, oracle_mean=3.4,
                          decision="not promoted", details=[], srm={"p_value": 0.5, "ok": True},
                          factorial=f, factorial_plot=fplot, promotion_rule=rule,
                          capped={"Random": 0.01, "SessionAware": 0.42}, oracle_capped=0.53, max_steps=30)
    text = path.read_text()
    for part in (f"**Promotion rule:** {rule}", "| policy / lists |", "![2x2](factorial.png)",
                 "| SessionAware | 3.000 | 0.700 | 0.420 |", "| Oracle (ceiling) | 3.400 | 1.000 | 0.530 |",
                 "after 30 recommended tracks", "Fieller", "itself capped in 0.530 of its sessions",
                 "the seed's headline (policy and lists changed at once) | T6 | T3"):
        assert part in text, part
