"""The loop's challengers are learners: a standard peer (the co-occurrence learner) and one
brought from a temporary module by its import path (no file of the project edited) run as
the quick loop's challengers, are registered with their lineage as versions holding their
lists (formats.learned), and the chosen one is served the next day."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from formats import learned as learned_format
from training.errors import JobError
from training.jobs.configs import LOOP_CONFIG, load_loop

MODEL = "botify-i2i-small"
PEERS = [{"name": "cooccurrence", "learner": "cooccurrence", "config": "training/config/learners/cooccurrence.yml"},
         {"name": "shift", "learner": "outside_learners.shift:Shift", "overrides": {"step": 7}}]


def _config(tmp: Path, repo: Path, challengers: list) -> Path:
    cfg = yaml.safe_load((repo / LOOP_CONFIG).read_text())
    cfg["quick"]["challengers"] = challengers
    path = tmp / "loop.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


def test_the_loop_config_takes_any_learner_and_names_a_wrong_one(tmp_path, repo, outside_learner):
    cfg = load_loop(_config(tmp_path, repo, PEERS), quick=True)
    assert [(c.name, c.learner) for c in cfg.challengers] == [("cooccurrence", "cooccurrence"),
                                                               ("shift", "outside_learners.shift:Shift")]
    assert cfg.challengers[1].learner_spec().make(repo).settings.step == 7
    for bad, says in (({"name": "x", "learner": "no_such.module:X"}, "cannot import"),
                      ({"name": "x", "learner": "cooccurrence", "overrides": {"shrnk": 1}}, "unknown keys"),
                      ({"name": "x", "learner": "als", "color": "red"}, "learner: NAME_OR_MODULE:CLASS")):
        with pytest.raises(JobError, match=says):
            load_loop(_config(tmp_path, repo, [bad]), quick=True)


@pytest.mark.slow
def test_the_quick_loop_runs_a_peer_and_an_outside_learner_as_its_challengers(tmp_path, repo, outside_learner):
    outside, _ = outside_learner
    config = _config(tmp_path, repo, PEERS)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "BENTOML_HOME": str(tmp_path / "bentoml"),
           "PYTHONPATH": os.pathsep.join([str(outside), str(repo)])}
    env.pop("MLFLOW_RUN_ID", None)
    proc = subprocess.run([sys.executable, "-m", "training.jobs.loop", "--quick", "--days", "1", "--config",
                           str(config), "--workdir", str(tmp_path / "work")], cwd=repo, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    versions = {v.tags.get("recipe"): v for v in client.search_model_versions(f"name='{MODEL}'")}
    assert set(versions) == {"course", "cooccurrence", "shift"}        # the bootstrap and both challengers
    assert versions["cooccurrence"].tags["learner"] == "cooccurrence"
    assert versions["shift"].tags["learner"] == "outside_learners.shift:Shift"
    for name in ("cooccurrence", "shift"):
        t = versions[name].tags
        assert t["role"] == "challenger" and t["days_trained_on"] == "0"
        assert t["parent_version"] == str(versions["course"].version)
    # what the loop served on day 1 is the chosen challenger's registered table, read back whole
    work = next((tmp_path / "work").iterdir())
    offline = pd.read_csv(work / "report" / "offline.csv")
    assert sorted(offline["candidate"]) == ["cooccurrence", "shift"]
    chosen = versions[offline.loc[offline["selected"], "candidate"].iloc[0]]
    served = yaml.safe_load((work / "day1" / "service.yml").read_text())["recommenders"]
    folder = work / "lists" / f"v{chosen.version}"
    version = learned_format.read(folder)
    assert str(folder / learned_format.TABLE) in {r.get("i2i") for r in served.values()}
    assert version.learner["name"] == chosen.tags["recipe"] and version.lists.shape[1] == 50
    shift = learned_format.read(work / "lists" / f"v{versions['shift'].version}")
    assert shift.learner["config"]["step"] == 7 and shift.learner["window"]["days"] == [0]
