"""The calibration's verdicts: figures in range pass, each range's violation fails and
makes the command exit non-zero; the figures' ids and the session-cap sensitivity; and
the worlds themselves in range (the small world, and a mid-sized world at two other
seeds, so that the default world's design, not one lucky seed, meets issue 8's bounds)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from sim.calibrate import CHECKS, evaluate, main

IDS = ["random", "sticky_artist", "toppop", "oracle", "anchor_catalog", "anchor_ideal", "contextual_ideal"]


def figures(random=1.0, sticky=1.6, toppop=0.95, oracle=10.0, catalog=0.2, ideal=0.85):
    return {"random": {"reward": random, "headroom_share": 0.0},
            "sticky_artist": {"reward": sticky, "headroom_share": 0.05},
            "toppop": {"reward": toppop, "headroom_share": 0.0},
            "oracle": {"reward": oracle, "headroom_share": 1.0},
            "anchor_catalog": {"reward": 3.0, "headroom_share": catalog},
            "anchor_ideal": {"reward": 8.0, "headroom_share": ideal},
            "contextual_ideal": {"reward": 3.0, "headroom_share": 0.2}}


def test_figures_in_range_pass():
    assert evaluate(figures()) == []
    assert evaluate(figures(catalog=0.35, ideal=0.75)) == []   # the bounds are inclusive


@pytest.mark.parametrize("change, name", [
    ({"random": 0.5, "sticky": 0.8, "toppop": 0.5, "oracle": 5.0}, "random"),
    ({"random": 1.6, "sticky": 2.5, "toppop": 1.6, "oracle": 16.0}, "random"),
    ({"sticky": 1.2}, "sticky_artist"),
    ({"sticky": 2.2}, "sticky_artist"),
    ({"toppop": 0.8}, "toppop"),
    ({"toppop": 1.2}, "toppop"),
    ({"oracle": 3.9}, "oracle"),
    ({"catalog": 0.36}, "anchor_catalog"),
    ({"ideal": 0.74}, "anchor_ideal"),
    ({"ideal": float("nan")}, "anchor_ideal"),
])
def test_each_range_is_enforced(change, name):
    failures = evaluate(figures(**change))
    assert len(failures) == 1 and failures[0].startswith(name + ":")


def test_calibrate_command_writes_every_figure_and_the_cap_sensitivity(small_world, tmp_path, capsys):
    out = tmp_path / "c.json"
    code = main(["--config", "sim/config/small.yml", "--episodes", "200", "--seed", "1",
                 "--max-steps", "100", "30", "--json", str(out)])
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert code == (1 if data["failures"] else 0)
    assert list(data["figures"]) == IDS
    assert data["day"] == 1 and data["sessions"] is None
    for f in data["figures"].values():
        assert {"reward", "reward_se", "time_per_session", "time_per_session_se", "headroom_share",
                "truncated", "sessions", "users"} <= set(f)
        assert f["sessions"] == 200 and f["users"] == data["figures"]["random"]["users"]
    f = data["figures"]
    assert f["oracle"]["headroom_share"] == pytest.approx(1.0)
    assert f["random"]["headroom_share"] == pytest.approx(0.0)
    # the upper bound really bounds every reference recommender
    assert all(v["reward"] <= f["oracle"]["reward"] for v in f.values())
    # both caps side by side; the checked figures are the config's cap (30)
    assert data["max_steps"] == 30 and list(data["by_max_steps"]) == ["30", "100"]
    assert data["by_max_steps"]["30"] == data["figures"]
    longer = data["by_max_steps"]["100"]
    assert longer["oracle"]["truncated"] <= f["oracle"]["truncated"]
    assert longer["oracle"]["time_per_session"] >= f["oracle"]["time_per_session"]
    assert "max_steps 30" in text and "max_steps 100" in text and "SessionAnchor" in text


def test_bad_arguments_are_clear_errors(small_world, capsys):
    assert main(["--config", "sim/config/small.yml", "--max-steps", "0"]) == 2
    assert "--max-steps" in capsys.readouterr().err
    assert main(["--config", "sim/config/nowhere.yml"]) == 2
    assert "not found" in capsys.readouterr().err


def _scaled(base: dict, tmp_path, name: str, **world) -> str:
    cfg = json.loads(json.dumps(base))
    cfg["world"].update({"name": name, "dir": str(tmp_path / name), **world})
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_small_world_meets_every_bound(small_world, tmp_path):
    """The small world the other parts' tests use is a scene world in range too: the
    catalog alone far below the hidden-truth lists."""
    out = tmp_path / "c.json"
    code = main(["--config", "sim/config/small.yml", "--episodes", "1500", "--seed", "424242",
                 "--max-steps", "30", "--json", str(out)])
    data = json.loads(out.read_text())
    assert code == 0 and data["failures"] == [], data["failures"]
    f = data["figures"]
    assert f["anchor_catalog"]["headroom_share"] <= CHECKS["anchor_catalog"].high - 0.1
    assert f["anchor_ideal"]["headroom_share"] >= CHECKS["anchor_ideal"].low + 0.05


@pytest.mark.parametrize("seed", [1001, 2002])
def test_default_world_design_meets_every_bound_at_other_seeds(repo, tmp_path, seed):
    """The default world's design (sim/config/env.yml) scaled to 10,000 tracks, at two
    world seeds other than the default's: every figure in range, with margins."""
    base = yaml.safe_load((repo / "sim" / "config" / "env.yml").read_text())
    base["world"]["scenes"]["count"] = MID_SCENES
    path = _scaled(base, tmp_path, f"mid-{seed}", seed=seed, **MID)
    subprocess.run([sys.executable, "-m", "sim.world", "--config", path], cwd=repo, check=True,
                   stdout=subprocess.DEVNULL)
    out = tmp_path / "c.json"
    code = main(["--config", path, "--episodes", "1500", "--seed", "424242", "--max-steps", "30",
                 "--json", str(out)])
    data = json.loads(out.read_text())
    assert code == 0 and data["failures"] == [], data["failures"]
    f = data["figures"]
    assert f["anchor_catalog"]["headroom_share"] <= CHECKS["anchor_catalog"].high - 0.1
    assert f["anchor_ideal"]["headroom_share"] >= CHECKS["anchor_ideal"].low + 0.05


# the default world's design at a fifth of its size
MID = {"tracks": 10000, "artists": 400, "users": 2000}
MID_SCENES = 60
