"""`mlflow run . -e NAME --env-manager local` of each training entry point on the small
world: what a user types, end to end (world -> collect over HTTP and in-process ->
train -> recommend -> BentoML)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

SMALL = "sim/config/small.yml"
EXPERIMENT = "botify-tests"


@pytest.fixture(scope="module", autouse=True)
def experiment(mlflow_store):
    """The runs' experiment, its artifacts in the throwaway store: MLflow's Default
    experiment would put them in ./mlruns of the working directory, the user's. (MLflow's
    process-wide URI is pointed at this module's store, where the runs go: an earlier
    module may have left it on its own.)"""
    import mlflow
    from training.registry import tracking
    tracking.setup()
    MlflowClient().create_experiment(EXPERIMENT, artifact_location=(mlflow_store / "artifacts").as_uri())
    assert mlflow.get_tracking_uri() == os.environ["MLFLOW_TRACKING_URI"]


def mlflow_run(repo: Path, entry: str, **params) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    cmd = [str(Path(bin_dir) / "mlflow"), "run", ".", "-e", entry, "--env-manager", "local",
           "--experiment-name", EXPERIMENT]
    for k, v in params.items():
        cmd += ["-P", f"{k}={v}"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def last_json(proc: subprocess.CompletedProcess) -> dict:
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1])


def runs(entry: str):
    client = MlflowClient()
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, f"tags.`botify.entry` = '{entry}'", order_by=["start_time DESC"])


@pytest.fixture(scope="module")
def collected(repo, small_world, tmp_path_factory):
    proc = mlflow_run(repo, "world", config=SMALL)
    assert json.loads([l for l in proc.stdout.splitlines() if l.startswith("{")][-1])["tracks"] > 0
    out = tmp_path_factory.mktemp("collect")
    http = last_json(mlflow_run(repo, "collect", sim_config=SMALL, episodes=40, seed=5, out=out))
    inproc = last_json(mlflow_run(repo, "collect", sim_config=SMALL, episodes=300, seed=6,
                                  in_process="true", out=out))
    assert Path(http["log"]).is_relative_to(out) and Path(inproc["log"]).is_relative_to(out)
    return http, inproc


def test_collect_keeps_the_log_as_the_runs_dataset(collected):
    http, inproc = collected
    for summary, episodes in ((http, 40), (inproc, 300)):
        run = MlflowClient().get_run(summary["run_id"])
        assert run.data.metrics["episodes_played"] == episodes
        assert run.data.metrics["sessions"] == episodes          # every session ends with /last
        assert run.data.metrics["events"] == summary["events"] > episodes
        ds = run.inputs.dataset_inputs[0].dataset
        assert ds.digest == summary["digest"][:16] and json.loads(ds.profile)["num_rows"] == summary["events"]
        names = {f.path for f in MlflowClient().list_artifacts(summary["run_id"], "events")}
        assert any(n.startswith("events/events-") for n in names)
    arms = {json.dumps(e) for e in _experiments(http["log"])}
    assert len(arms) == 3                                         # C, T1, T2 of COLD_START


def _experiments(log_dir):
    from training.data.events import read_events
    return read_events(log_dir)["experiments"]


def test_train_recommend_and_bentoml_entry_points(repo, small_world, collected, tmp_path):
    _, inproc = collected
    train = mlflow_run(repo, "train", log=inproc["artifact"], world=str(small_world),
                       config="training/config/seed.yml", max_epochs=3)
    out = last_json(train)
    assert out["version"] == "1" and sum(out["split"].values()) > 0
    run = MlflowClient().get_run(out["run_id"])
    assert run.data.params["embedding_dim"] == "0" and run.data.params["embedding_dim_resolved"] == "32"
    assert run.data.metrics["test_mse"] < run.data.metrics["test_mse_random"]
    i2i = tmp_path / "i2i.jsonl"
    rec = last_json(mlflow_run(repo, "recommend", model="challenger", output=str(i2i)))
    assert rec["version"] == "1" and rec["tracks"] == 2000
    lines = i2i.read_text().splitlines()
    assert len(lines) == 2000 and len(json.loads(lines[0])["recommendations"]) == 50
    bento = last_json(mlflow_run(repo, "to_bentoml", model="1", k=10, bento_name="my-lists"))
    assert bento["config_value"].startswith("bentoml:my-lists:")
