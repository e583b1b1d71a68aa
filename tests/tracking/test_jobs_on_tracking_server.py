"""`make experiment` and `make loop` with MLFLOW_TRACKING_URI exported to a tracking server on
PostgreSQL: the quick experiment and the quick loop through their MLproject entry points,
unchanged, record their runs, models and artifacts on the server (none in a local store)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from training.registry import tracking

pytestmark = pytest.mark.slow


def _mlflow_run(repo: Path, server, entry: str, experiment: str, *params: str) -> subprocess.CompletedProcess:
    """`mlflow run` with what `make tracking-server` says to export: the server's URI and its lock."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.uri, "BOTIFY_PROMOTION_LOCK": server.lock_uri(),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_RUN_ID", None)
    cmd = [str(Path(sys.executable).with_name("mlflow")), "run", str(repo), "-e", entry, "--env-manager", "local",
           "--experiment-name", experiment, "-P", "quick=true", *[a for p in params for a in ("-P", p)]]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def _parent(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    return parents[0], runs


def test_quick_experiment_records_on_the_tracking_server(tracking_server, tracking_server_handle, repo,
                                                         small_world, experiment_config, tmp_path):
    _mlflow_run(repo, tracking_server_handle, "experiment", "server-experiment", f"arms={experiment_config()}")
    client = MlflowClient(tracking_server)
    parent, runs = _parent(client, "server-experiment")
    assert parent.info.status == "FINISHED"
    assert len(runs) == 6                                  # the job and its five steps
    # artifacts went through the server into its folder
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")
    report = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="report/report.md",
                                                 tracking_uri=tracking_server, dst_path=str(tmp_path))
    assert "mean_time_per_session" in Path(report).read_text()
    stored = tracking_server_handle.dir / "artifacts"
    assert list(stored.rglob("report.md"))
    # both models registered on the server, each version's files readable from it
    ours = {r.info.run_id for r in runs}
    versions = [v for v in client.search_model_versions() if v.run_id in ours]
    assert len(versions) == 2                              # control and treatment
    source = client.get_model_version_download_uri(versions[0].name, versions[0].version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_server,
                                                dst_path=str(tmp_path / "model"))
    assert (Path(local) / "MLmodel").exists()


def test_quick_loop_leaves_a_champion_on_the_tracking_server(tracking_server, tracking_server_handle, repo,
                                                              small_world, tmp_path):
    _mlflow_run(repo, tracking_server_handle, "loop", "server-loop", "days=1", f"workdir={tmp_path / 'loop'}")
    client = MlflowClient(tracking_server)
    parent, runs = _parent(client, "server-loop")
    assert parent.info.status == "FINISHED" and parent.data.tags["loop_status"] == "finished"
    days = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["loop.day"] for r in days) == ["0", "1"]
    model = "botify-i2i-small"                            # the quick loop's registered model
    champion = client.get_model_version_by_alias(model, tracking.CHAMPION)
    source = client.get_model_version_download_uri(model, champion.version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_server,
                                                dst_path=str(tmp_path / "champion"))
    assert (Path(local) / "MLmodel").exists()
