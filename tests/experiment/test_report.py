"""The report's files: a table a machine can read back, Markdown a person can, a real PNG."""
from __future__ import annotations

import numpy as np
import pandas as pd

from training import analysis as A
from training import report as R


def _table():
    rng = np.random.default_rng(3)
    n = 200
    arms = pd.Series(np.tile(["C", "T1", "T2"], n), index=pd.Index(range(3 * n), name="user"))
    shift = arms.map({"C": 0.0, "T1": 1.0, "T2": 0.05})
    y = pd.Series(rng.normal(2, 1, 3 * n), index=arms.index) + shift
    users = pd.DataFrame({"mean_time_per_session": y, "time": 2 * y})
    return A.effects_table(users, arms, metrics=["mean_time_per_session", "time"],
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
