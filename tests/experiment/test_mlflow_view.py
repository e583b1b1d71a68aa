"""What `mlflow ui` opens on: the jobs' experiments carry the tag that selects MLflow's
model-training view (MLflow 3 otherwise infers a GenAI experiment and opens on traces)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.tracking._tracking_service import utils as tracking_utils

from training.runlog import EXPERIMENT_KIND_TAG, MODEL_TRAINING, mark_model_training


def test_the_installed_ui_knows_the_tag_and_its_value():
    """The value is one the installed MLflow's UI reads as custom model development."""
    js = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    bundle = "".join(p.read_text(errors="replace") for p in js.glob("*.js"))
    assert f'"{EXPERIMENT_KIND_TAG}"' in bundle
    kinds = dict(re.findall(r'([A-Z_]+)="([a-z_]+)"', bundle))
    assert kinds.get("CUSTOM_MODEL_DEVELOPMENT") == MODEL_TRAINING


def test_new_and_existing_experiments_open_in_the_training_view(tmp_path, monkeypatch, repo):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # created by a job: tagged at birth (in a process of its own: MLflow keeps the store it
    # sets up process-wide, exported to the environment)
    subprocess.run([sys.executable, "-c", "from training.registry import tracking; tracking.setup('botify-new')"],
                   cwd=repo, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, check=True)
    client = MlflowClient(uri, uri)
    assert client.get_experiment_by_name("botify-new").tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    # created by `mlflow run --experiment-name` before the job starts: tagged by the job's run
    other = client.create_experiment("botify-made-by-mlflow-run")
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(other).tags
    mark_model_training(other)
    assert client.get_experiment(other).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
