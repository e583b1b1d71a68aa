"""The calibration's verdicts: figures in range pass, each range's violation fails and
makes the command exit non-zero."""
from __future__ import annotations

import json

import pytest

from sim.calibrate import evaluate, main


def figures(random=1.0, sticky=1.6, toppop=0.95, oracle=10.0):
    return {"Random": {"reward": random}, "StickyArtist": {"reward": sticky},
            "TopPop-100": {"reward": toppop}, "Oracle (upper bound)": {"reward": oracle}}


def test_figures_in_range_pass():
    assert evaluate(figures()) == []


@pytest.mark.parametrize("change, name", [
    ({"random": 0.5, "sticky": 0.8, "toppop": 0.5, "oracle": 5.0}, "Random"),
    ({"random": 1.6, "sticky": 2.5, "toppop": 1.6, "oracle": 16.0}, "Random"),
    ({"sticky": 1.2}, "StickyArtist"),
    ({"sticky": 2.2}, "StickyArtist"),
    ({"toppop": 0.8}, "TopPop-100"),
    ({"toppop": 1.2}, "TopPop-100"),
    ({"oracle": 3.9}, "Oracle (upper bound)"),
])
def test_each_range_is_enforced(change, name):
    failures = evaluate(figures(**change))
    assert len(failures) == 1 and failures[0].startswith(name + ":")


def test_calibrate_command_prints_figures_and_exits_by_verdict(small_world, tmp_path, capsys):
    out = tmp_path / "c.json"
    code = main(["--config", "sim/config/small.yml", "--episodes", "200", "--seed", "1", "--json", str(out)])
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert code == (1 if data["failures"] else 0)
    for name in ("Random", "StickyArtist", "TopPop-100", "Oracle (upper bound)", "SessionAnchor"):
        assert name in text
    f = data["figures"]
    assert f["Oracle (upper bound)"]["headroom_share"] == pytest.approx(1.0)
    assert f["Random"]["headroom_share"] == pytest.approx(0.0)
    # the upper bound really bounds every reference recommender
    assert all(v["reward"] <= f["Oracle (upper bound)"]["reward"] for v in f.values())
