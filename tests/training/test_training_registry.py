"""train -> registry (versions, aliases) -> recommend -> BentoML, on the planted world,
against a throwaway MLflow store (tests/training/conftest.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from training import tracking
from training.i2i import read_i2i
from training.recommend import export, load_model
from training.recommend import main as recommend_main
from training.train import TrainConfig, train
from training.train import main as train_main

COURSE = "training/config/course.yml"
SEED = "training/config/seed.yml"


@pytest.fixture(scope="module")
def two_versions(planted, repo):
    world, log, _ = planted
    a = train(TrainConfig.from_yaml(repo / COURSE, max_epochs=3), [str(log)], str(world), progress=False)
    b = train(TrainConfig.from_yaml(repo / SEED, max_epochs=3), [str(log)], str(world), progress=False)
    return a, b


def test_versions_aliases_and_run_contents(two_versions):
    a, b = two_versions
    client = MlflowClient()
    assert (a.version, b.version) == ("1", "2")
    model = client.get_registered_model(tracking.MODEL_NAME)
    assert {k: str(v) for k, v in model.aliases.items()} == {"challenger": "2"}   # newest; no champion
    assert str(tracking.resolve_version("challenger").version) == "2"
    assert tracking.resolve_version("1").run_id == a.run_id
    run = client.get_run(b.run_id)
    p, m = run.data.params, run.data.metrics
    assert p["embedding_dim"] == "32" and p["split"] == "by_user" and p["objective"] == "bce"
    for key in ("test_mse", "test_mse_const", "test_mse_random", "recall_at_10", "recall_at_50",
                "ndcg_at_10", "ndcg_at_50", "training_seconds", "split_train", "split_val", "split_test"):
        assert key in m, key
    assert sum(m[f"split_{s}"] for s in ("train", "val", "test")) == m["pairs"]
    history = client.get_metric_history(b.run_id, "val_loss")
    assert len(history) == m["epochs"] == 3
    assert len(run.data.tags["dataset_digest"]) == 64
    assert run.inputs.dataset_inputs[0].dataset.digest == run.data.tags["dataset_digest"][:16]
    mv = client.get_model_version(tracking.MODEL_NAME, "2")
    assert mv.tags["run_id"] == b.run_id


def test_logged_model_has_signature_and_serves_scores(two_versions):
    import mlflow
    info = mlflow.models.get_model_info(tracking.model_uri("challenger"))
    assert info.signature is not None and info.signature.inputs is not None
    _, model = load_model("challenger")
    out = model(torch.tensor([0, 1]))
    assert out.shape == (2, model.n_tracks)


def test_recommend_exports_ranked_lists_in_contract_format(two_versions, tmp_path):
    summary = export("challenger", tmp_path / "i2i.jsonl", k=10)
    assert summary["version"] == "2"
    lists = read_i2i(tmp_path / "i2i.jsonl")
    _, model = load_model("challenger")
    assert sorted(lists) == list(range(model.n_tracks))
    first = json.loads((tmp_path / "i2i.jsonl").read_text().splitlines()[0])
    assert set(first) == {"track", "recommendations"} and len(first["recommendations"]) == 10
    with torch.no_grad():
        scores = model(torch.arange(model.n_tracks)).numpy()
    artist = model.artist_of.numpy()
    for t in range(0, model.n_tracks, 37):
        row = lists[t]
        assert t not in row and len(set(row)) == 10
        assert (np.diff(scores[t][row]) <= 1e-5).all()            # best first, by the model's score
        assert np.bincount(artist[row]).max() <= 2                 # the seed config's artist cap


def test_unknown_alias_or_version_is_a_clear_error(two_versions, tmp_path, capsys):
    with pytest.raises(tracking.RegistryError, match=r"no version or alias 'nope'.*versions: \[1, 2\].*challenger"):
        tracking.resolve_version("nope")
    assert recommend_main(["--model", "99", "--output", str(tmp_path / "x.jsonl")]) == 2
    assert "no version or alias '99'" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_bad_logs_fail_clearly_and_register_nothing(planted, tmp_path, capsys):
    world, _, _ = planted
    before = len(MlflowClient().search_model_versions(f"name='{tracking.MODEL_NAME}'"))
    empty = tmp_path / "events-0.jsonl"
    empty.write_text("")
    assert train_main(["--log", str(empty), "--world", str(world)]) == 2
    assert "is empty" in capsys.readouterr().err
    bad = tmp_path / "bad" / "events-0.jsonl"
    bad.parent.mkdir()
    bad.write_text('{"message": "next", "timestamp": 1, "user": 1, "track": 2, "time": 1.0}\n{"mess')
    assert train_main(["--log", str(bad.parent), "--world", str(world)]) == 2
    assert "events-0.jsonl:2: not a JSON object" in capsys.readouterr().err
    assert train_main(["--log", str(bad.parent), "--world", str(tmp_path / "no-world")]) == 2
    assert "no public catalog" in capsys.readouterr().err
    after = len(MlflowClient().search_model_versions(f"name='{tracking.MODEL_NAME}'"))
    assert after == before


def test_to_bentoml_imports_version_with_lineage(two_versions, tmp_path):
    import bentoml
    from training.to_bentoml import import_version
    a, _ = two_versions
    tag = import_version("1", k=5)
    bm = bentoml.models.get(tag)
    assert bm.info.labels["mlflow_run_id"] == a.run_id
    assert bm.info.labels["mlflow_version"] == "1"
    assert "test_mse" in bm.info.metadata["metrics"]
    lists = read_i2i(f"{bm.path}/i2i.jsonl")
    assert len(lists) == 300 and all(len(v) == 5 for v in lists.values())
    assert np.load(f"{bm.path}/context.npy").shape == (300, 10)


def test_same_seed_same_metrics_end_to_end(planted, repo):
    world, log, _ = planted
    cfg = TrainConfig.from_yaml(repo / SEED, max_epochs=2)
    a = train(cfg, [str(log)], str(world), register=None, progress=False)
    b = train(cfg, [str(log)], str(world), register=None, progress=False)
    timing = {"training_seconds"}
    assert {k: v for k, v in a.metrics.items() if k not in timing} == \
           {k: v for k, v in b.metrics.items() if k not in timing}
    assert a.split_sizes == b.split_sizes and a.version is None
    c = train(TrainConfig.from_yaml(repo / SEED, max_epochs=2, seed=1), [str(log)], str(world),
              register=None, progress=False)
    assert c.metrics["test_mse"] != a.metrics["test_mse"]


def test_service_loads_the_imported_lists(two_versions, repo):
    """The service's `i2i: bentoml:NAME:TAG` reads exactly what to_bentoml stored."""
    from service.artifacts import load_i2i
    from training.to_bentoml import import_version
    tag = import_version("challenger", k=7)
    table = load_i2i(f"bentoml:{tag}", repo, 300)
    assert table.shape == (300, 7)
    import bentoml
    stored = read_i2i(f"{bentoml.models.get(tag).path}/i2i.jsonl")
    assert table[42].tolist() == stored[42]
