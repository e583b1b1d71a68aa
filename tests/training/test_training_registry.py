"""train -> registry (versions, aliases) -> recommend -> BentoML, on the planted world,
against a throwaway MLflow store (tests/training/conftest.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from training.registry import tracking
from formats.lists import read_jsonl_lists
from training.registry.export import export, load_model
from training.jobs.recommend import main as recommend_main
from training.learning.train import TrainConfig, train
from training.learning.train import main as train_main

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
    # what `mlflow ui` shows: the registered model's description, and each version's own
    assert model.description == tracking.MODEL_DESCRIPTION
    assert f"({b.run_id})" in mv.description and "300 tracks" in mv.description


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
    _, model = load_model("challenger")
    lists = read_jsonl_lists(tmp_path / "i2i.jsonl", "track", model.n_tracks, model.n_tracks)
    assert (lists >= 0).all()                                     # a full list for every track
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
    assert "events-0.jsonl:2: not valid JSON (column 2: Unterminated string" in capsys.readouterr().err
    assert train_main(["--log", str(bad.parent), "--world", str(tmp_path / "no-world")]) == 2
    assert "no public catalog" in capsys.readouterr().err
    after = len(MlflowClient().search_model_versions(f"name='{tracking.MODEL_NAME}'"))
    assert after == before


def test_to_bentoml_imports_version_with_lineage(two_versions, tmp_path):
    import bentoml
    from training.registry.export import import_version
    a, _ = two_versions
    tag = import_version("1", k=5)
    bm = bentoml.models.get(tag)
    assert bm.info.labels["mlflow_run_id"] == a.run_id
    assert bm.info.labels["mlflow_version"] == "1"
    assert "test_mse" in bm.info.metadata["metrics"]
    lists = read_jsonl_lists(f"{bm.path}/i2i.jsonl", "track", 300, 300)
    assert lists.shape == (300, 5) and (lists >= 0).all()
    assert np.array_equal(np.load(f"{bm.path}/i2i.npy"), lists)
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
    from training.registry.export import import_version
    tag = import_version("challenger", k=7)
    table = load_i2i(f"bentoml:{tag}", repo, 300)
    assert table.shape == (300, 7)
    import bentoml
    stored = read_jsonl_lists(f"{bentoml.models.get(tag).path}/i2i.jsonl", "track", 300, 300)
    assert np.array_equal(table, stored)


class _Boom:
    """A pickle payload: unpickling it creates the marker file (i.e. runs code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_planted_pickle_is_refused_not_run(two_versions, tmp_path):
    """A version whose files are a pickle (what MLflow's pytorch flavor writes) is refused by
    the loader, and the pickle never runs; MLflow's own loader refuses it too, because the
    project's processes turn its pickle deserialization off."""
    import os
    import pickle

    import mlflow
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    from training.learning.model import ModelFormatError, load_model as load_dir
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"   # set by `import training`
    marker = tmp_path / "pwned"
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "model.pth").write_bytes(pickle.dumps(_Boom(marker)))
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(planted), artifact_path="model")
    client = MlflowClient()
    mv = client.create_model_version(tracking.MODEL_NAME, f"runs:/{run.info.run_id}/model", run.info.run_id)
    with pytest.raises(ModelFormatError, match="model.pth.*refused"):
        load_model(mv.version)
    # the safe format's files, with a pickle inside the weights: refused as well
    good = tmp_path / "good"
    import shutil
    shutil.copytree(mlflow.artifacts.download_artifacts(tracking.model_uri("1")), good)
    np.savez(good / "weights.npz", **{"context.weight": np.array([_Boom(marker)], dtype=object)})
    with pytest.raises(ModelFormatError, match="only plain arrays"):
        load_dir(good)
    # MLflow's pytorch flavor: its loader refuses to unpickle while the project's setting is on
    flavored = tmp_path / "flavored"
    mlflow.pytorch.save_model(torch.nn.Linear(2, 2), flavored, serialization_format="pickle")
    torch.save(_Boom(marker), flavored / "data" / "model.pth")
    with pytest.raises(MlflowException, match="pickle is disallowed"):
        mlflow.pytorch.load_model(str(flavored))
    assert not marker.exists()


def test_model_round_trips_without_pickle(two_versions):
    """A version's files are spec.json + weights.npz (nothing executable), and what
    `load_model` reads back is the trained model: its tables equal the ones the training run
    logged from the model in memory."""
    import os

    import mlflow
    a, b = two_versions
    for version, res in (("1", a), ("2", b)):
        mv, model = load_model(version)
        path = mlflow.artifacts.download_artifacts(tracking.model_uri(version))
        assert {"spec.json", "weights.npz", "MLmodel"} <= set(os.listdir(path))
        assert not [f for f in os.listdir(path) if f.endswith((".pth", ".pkl", ".pt"))]
        logged = mlflow.artifacts.download_artifacts(f"runs:/{res.run_id}/embeddings")
        for got, name in zip(model.tables(), ("context", "target", "target_bias")):
            assert np.array_equal(got, np.load(f"{logged}/{name}.npy")), (version, name)


DECLARED = """
import json, sys
from service.service import Botify
print(json.dumps(sorted(str(m.tag) for m in Botify.models)))
"""


def test_the_service_declares_the_models_its_config_serves(two_versions, repo, tmp_path):
    """BentoML's model declaration on the service (what `bentoml build` packs and `bentoml serve`
    resolves first) follows the served config: none for the cold start, the champion's lists for
    the product, both lists for the experiment's arms; a missing one stops the import with the
    command that makes it. bentofile.yaml keeps no hand-made list."""
    import subprocess
    import sys

    import yaml

    from training.registry.export import SERVED, import_version
    bentofile = yaml.safe_load((repo / "bentofile.yaml").read_text())
    assert "models" not in bentofile and bentofile["args"] == {"config": "service/config/product.yml"}

    from bentoml._internal.configuration.containers import BentoMLContainer
    home = BentoMLContainer.bentoml_home.get()   # where this process exports (fixed at its first use)

    def declared(config: str, store: str = home) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", DECLARED], cwd=repo, capture_output=True, text=True,
                              env={**os.environ, "BOTIFY_CONFIG": config, "BENTOML_HOME": store})
    missing = declared("service/config/product.yml", str(tmp_path / "empty-store"))
    assert missing.returncode != 0 and "botify-champion-lists:latest, which is not in the store" in missing.stderr
    assert "make experiment" in missing.stderr and "bento_name=botify-champion-lists" in missing.stderr
    for role in ("champion", "baseline"):
        import_version("1", bento_name=SERVED[role], k=3, role=role)
    for config, models in (("service/config/cold_start.yml", []),
                           ("service/config/product.yml", ["botify-champion-lists:latest"]),
                           ("service/config/experiments.yml", ["botify-baseline-lists:latest",
                                                               "botify-champion-lists:latest"])):
        out = declared(config)
        assert out.returncode == 0, out.stderr[-2000:]
        assert json.loads(out.stdout.splitlines()[-1]) == models, config


def test_the_product_serves_the_champion_with_the_loops_policy(repo):
    """service/config/product.yml is what the loop serves as the product: SessionAware with the
    loop's options, over the lists `promotion.deploy` exports as the champion's."""
    import yaml

    from service.config import bentoml_models, read_config
    from training.registry.export import SERVED
    product = read_config(repo / "service/config/product.yml")
    loop = yaml.safe_load((repo / "training/config/loop.yml").read_text())
    (served,) = {r for e in product["experiments"] for r in e["arms"].values()}
    spec = dict(product["recommenders"][served])
    assert spec.pop("i2i") == f"bentoml:{SERVED['champion']}:latest"
    assert spec == loop["service"]["policies"][loop["promotion"]["policy"]]
    assert bentoml_models(product) == [f"{SERVED['champion']}:latest"]
    experiment = yaml.safe_load((repo / "training/config/experiment.yml").read_text())
    assert experiment["promotion"]["deploy"] == {"champion": SERVED["champion"], "baseline": SERVED["baseline"]}
    assert loop["promotion"]["deploy"] == {"champion": SERVED["champion"]}


def test_bento_built_after_a_promotion_holds_the_champion(two_versions, planted, repo, tmp_path):
    """Promotion moves @champion; its export step puts the champion's lists (and the baseline's)
    into the BentoML store; `bentoml build` of the experiment's arms packs the models the service
    declares for them; the served Bento's GET / names the champion's version and run id."""
    import shutil
    import subprocess
    import sys

    import bentoml
    import requests
    import yaml

    from service.launch import ServiceProcess
    from training.registry.promotion import deploy
    a, b = two_versions
    world, _, _ = planted
    client = MlflowClient()
    client.set_registered_model_alias(tracking.MODEL_NAME, tracking.CHAMPION, b.version)
    targets = yaml.safe_load((repo / "training/config/experiment.yml").read_text())["promotion"]["deploy"]
    tags = deploy(targets, {"baseline": a.version, "champion": tracking.CHAMPION})
    ctx = tmp_path / "ctx"
    # the service, the public formats it reads, the Dockerfile template bentofile.yaml names
    for part in ("service", "formats", "container"):
        shutil.copytree(repo / part, ctx / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo / "bentofile.yaml", ctx)
    shutil.copytree(world / "public", ctx / "data" / "world" / "public")
    # the store this process exported into: BentoML fixes it at its first use in the session,
    # which may be before this module pointed BENTOML_HOME elsewhere
    from bentoml._internal.configuration.containers import BentoMLContainer
    home = {"BENTOML_HOME": BentoMLContainer.bentoml_home.get()}
    config = "service/config/experiments.yml"
    out = subprocess.run([str(Path(sys.executable).with_name("bentoml")), "build", str(ctx), "--arg", f"config={config}",
                          "--output", "tag"], capture_output=True, text=True, cwd=ctx, timeout=600,
                         env={**os.environ, **home})
    assert out.returncode == 0, out.stderr[-2000:]
    bento_tag = out.stdout.strip().splitlines()[-1].replace("__tag__:", "")
    bento = bentoml.bentos.get(bento_tag)
    packed = {str(m.tag) for m in bento.info.all_models}
    assert packed == set(tags.values()) and bento.info.args == {"config": config}
    champion = client.get_model_version_by_alias(tracking.MODEL_NAME, tracking.CHAMPION)
    served = bentoml.models.get(tags["champion"])
    assert served.info.labels["mlflow_version"] == str(champion.version) == b.version
    assert served.info.labels["mlflow_run_id"] == champion.run_id == b.run_id
    assert served.info.labels["role"] == "champion"
    assert len(served.info.labels["dataset_digest"]) > 10
    assert not list((Path(bento.path) / "src").rglob("*.jsonl"))        # no copied list files
    with ServiceProcess("", target=bento_tag, cwd=tmp_path,              # the Bento's own config
                        env={"BOTIFY_LOG_DIR": str(tmp_path / "logs"), **home}) as svc:
        models = requests.get(svc.url + "/").json()["models"]
        assert models["session_aware"] == {"bentoml_model": tags["champion"], "name": tracking.MODEL_NAME,
                                           "version": b.version, "run_id": b.run_id, "role": "champion",
                                           "dataset_digest": served.info.labels["dataset_digest"]}
        assert models["contextual"]["version"] == a.version and models["contextual"]["role"] == "baseline"
        r = requests.post(svc.url + "/next/1", json={"track": 5, "time": 1.0})
        assert r.status_code == 200


def _product(repo: Path, tmp_path: Path, world: Path, name: str = "product.yml") -> Path:
    """service/config/product.yml serving `world`'s catalog, its log under tmp_path."""
    import yaml
    cfg = yaml.safe_load((repo / "service/config/product.yml").read_text())
    cfg.update(catalog=str(world / "public" / "tracks.json"), event_log={"dir": str(tmp_path / "logs")})
    (tmp_path / name).write_text(yaml.safe_dump(cfg))
    return tmp_path / name


def test_the_container_check_makes_the_champions_lists_or_names_the_command(two_versions, planted, repo, tmp_path,
                                                                           capsys, monkeypatch):
    """`make container`'s check, before any Docker work: no registry, no champion, a champion
    of another world, a missing baseline each stop it with the command that makes what is
    missing; with a champion, botify-champion-lists:latest holds its lists (exported when the
    store lacks them or holds another version's), and the product served from it names the
    champion's version at GET /."""
    import bentoml
    import requests
    import yaml

    from service.launch import ServiceProcess
    from training.jobs.container_check import bento_config, main
    from training.registry.serving import NotServable, prepare
    a, b = two_versions
    world, _, _ = planted
    product = _product(repo, tmp_path, world)
    assert bento_config() == "service/config/product.yml"
    client = MlflowClient()
    with monkeypatch.context() as env:   # a fresh clone: no registry at all
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")
        assert main(["--config", str(product)]) == 2
        assert "no registry yet" in capsys.readouterr().err
    tracking.setup()   # back to the session's store (main pointed MLflow at the missing one)
    if tracking.champion_version():
        client.delete_registered_model_alias(tracking.MODEL_NAME, tracking.CHAMPION)
    with pytest.raises(NotServable, match=r"has no @champion.*`make experiment`.*`make loop`"):
        prepare(product)
    client.set_registered_model_alias(tracking.MODEL_NAME, tracking.CHAMPION, a.version)
    first = prepare(product)
    (ready,) = first
    assert ready.exported and ready.role == "champion" and ready.version == a.version
    assert ready.tag.startswith("botify-champion-lists:")
    assert prepare(product) == [type(ready)(ready.tag, "champion", a.version, exported=False)]   # kept as it is
    client.set_registered_model_alias(tracking.MODEL_NAME, tracking.CHAMPION, b.version)
    assert main(["--config", str(product)]) == 0
    out = capsys.readouterr().out
    assert "botify-champion-lists:" in out and f"version {b.version}; exported from the registry now" in out
    served = bentoml.models.get("botify-champion-lists:latest")
    assert served.info.labels["mlflow_version"] == b.version and served.info.labels["role"] == "champion"
    # a champion trained on another world's catalog cannot serve this one
    other = tmp_path / "other"
    (other / "public").mkdir(parents=True)
    lines = (world / "public" / "tracks.json").read_text().splitlines()[:200]
    (other / "public" / "tracks.json").write_text("\n".join(lines) + "\n")
    (other / "public" / "world.json").write_text(json.dumps({"tracks": 200}))
    with pytest.raises(NotServable, match=r"trained on a 300-track catalog.*one of 200 tracks.*make experiment"):
        prepare(_product(repo, tmp_path, other, "other.yml"))
    # a config that also serves the experiment's baseline, which only the experiment exports
    cfg = yaml.safe_load(product.read_text())
    cfg["recommenders"]["contextual"] = {"kind": "contextual", "i2i": "bentoml:botify-nobaseline-lists:latest"}
    cfg["experiments"][0]["arms"]["T1"] = "contextual"
    (tmp_path / "two.yml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(NotServable, match=r"botify-nobaseline-lists:latest, which is not in the store.*to_bentoml"):
        prepare(tmp_path / "two.yml")
    # what the image will serve, served here without Docker: GET / names the champion's version
    from bentoml._internal.configuration.containers import BentoMLContainer
    with ServiceProcess(str(product), env={"BENTOML_HOME": BentoMLContainer.bentoml_home.get()}) as svc:
        model = requests.get(svc.url + "/").json()["models"]["session_aware"]
        assert (model["name"], model["version"], model["run_id"]) == (tracking.MODEL_NAME, b.version, b.run_id)
        assert requests.post(svc.url + "/next/1", json={"track": 5, "time": 1.0}).status_code == 200
