"""A learner's run and its registered version: `train_learner` logs and registers one
learner's lists (MLflow registered model `botify-i2i`, alias @challenger, lineage tags),
`versions.fetch` brings the version's folder back, in formats.learned's format; a learner
from a temporary module (its import path, no edit of the project) goes the same way."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from mlflow import MlflowClient

from formats import learned as learned_format
from training.learning import policy_params
from training.learning.learn import main as learn_main
from training.learning.learn import train_learner
from training.learning.learners.base import LearnerError, LearnerSpec
from training.learning.window import Window
from training.registry import tracking, versions

@pytest.fixture(scope="module")
def window(planted):
    world, log, _ = planted
    return Window((str(log),), world, seed=3, days=(4, 5))


def test_a_learners_version_is_registered_with_its_lineage_and_fetched_back(window, tmp_path):
    res = train_learner(LearnerSpec("cooc", "cooccurrence"), window, k=20, register="botify-i2i-test",
                        tags={"parent_version": "7"})
    client = MlflowClient()
    mv = client.get_model_version("botify-i2i-test", res.version)
    assert mv.tags["days_trained_on"] == "4,5" and mv.tags["dataset_digest"] == window.digest
    assert mv.tags["learner"] == "cooccurrence" and mv.tags["parent_version"] == "7"
    assert mv.tags["run_id"] == res.run_id
    assert str(tracking.resolve_version("challenger", "botify-i2i-test").version) == res.version
    # what `mlflow ui` shows: the one registered model's description, and what this version is
    assert client.get_registered_model("botify-i2i-test").description == tracking.MODEL_DESCRIPTION
    assert "cooc (cooccurrence)" in mv.description and res.run_id in mv.description
    run = client.get_run(res.run_id)
    assert run.data.params["catalog_tracks"] == str(window.catalog.size)
    assert run.data.params["learner"] == "cooccurrence" and run.data.params["lead"] == "2"
    assert run.inputs.dataset_inputs[0].dataset.digest == window.digest[:16]
    assert run.data.metrics["tracks_with_neighbours"] > 0

    folder = versions.fetch(res.version, "botify-i2i-test", dst=tmp_path / "v")
    back = learned_format.read(folder, n_tracks=window.catalog.size)
    assert np.array_equal(np.asarray(back.lists), res.lists) and back.lists.shape == (window.catalog.size, 20)
    assert back.learner["window"]["dataset_digest"] == window.digest and back.learner["layout"]["lead"] == 2
    # the policy: the window's estimates of the serving policy's constants (this learner has none)
    assert back.policy == policy_params.policy(window.policy_estimates) == res.policy and back.model is None
    assert back.learner["figures"]["policy.discount_n"] == window.policy_estimates["discount"].count
    # the JSON lines hold the same lists (formats.lists reads either form)
    from formats import lists as list_format
    assert np.array_equal(list_format.read_lists(folder / learned_format.JSONL, "track", window.catalog.size,
                                                 window.catalog.size)[:, :20], res.lists)


def test_a_learners_version_is_exported_into_the_bentoml_store_as_the_service_reads_it(window):
    """What the loop's promotion deploys (and `make container`'s check exports): a learner's
    version becomes a BentoML model holding its own lists in both of the format's forms, its
    policy and its description, with its lineage as labels; the lists the day served, when
    given, are the ones exported."""
    import uuid
    from pathlib import Path

    import bentoml

    from formats import lists as list_format
    from training.registry.export import import_version
    res = train_learner(LearnerSpec("cooc", "cooccurrence"), window, k=20, register="botify-i2i-test")
    served = versions.fetch(res.version, "botify-i2i-test") / learned_format.TABLE
    n = window.catalog.size
    for i2i in (None, served):
        tag = import_version(res.version, bento_name=f"botify-test-{uuid.uuid4().hex[:8]}", name="botify-i2i-test",
                             i2i=i2i, role="champion")
        model = bentoml.models.get(tag)
        assert model.info.labels["mlflow_version"] == res.version and model.info.labels["role"] == "champion"
        assert model.info.labels["dataset_digest"] == window.digest[:63]
        folder = Path(model.path)
        for form in (list_format.TABLES["i2i"], list_format.FILES["i2i"]):
            assert np.array_equal(list_format.read_lists(folder / form, "track", n, n)[:, :20], res.lists), form
        # the policy the version learned, beside the lists (the service reads it) and in the metadata
        assert json.loads((folder / learned_format.POLICY).read_text()) == res.policy == model.info.metadata["policy"]
        assert res.policy["discount"] == policy_params.policy(window.policy_estimates)["discount"]
        assert json.loads((folder / learned_format.LEARNER).read_text())["learner"] == "cooccurrence"
        assert not (folder / "context.npy").exists()   # an embedding model's tables only


def test_the_recommend_step_exports_a_learners_version_as_json_lines(window, tmp_path):
    """`mlflow run . -e recommend -P model=<version>` on a learner's version writes its own lists
    (their first k places) in the contract's JSON lines."""
    from formats import lists as list_format
    from training.registry.export import export
    res = train_learner(LearnerSpec("cooc", "cooccurrence"), window, k=20, register="botify-i2i-test")
    n = window.catalog.size
    summary = export(res.version, tmp_path / "lists.jsonl", k=10, name="botify-i2i-test", log=False)
    assert summary["version"] == res.version and summary["k"] == 10
    written = list_format.read_lists(tmp_path / "lists.jsonl", "track", n, n)
    assert np.array_equal(written[:, :10], res.lists[:, :10])


def test_a_learner_from_a_temporary_module_is_trained_registered_and_served_by_its_import_path(
        window, outside_learner):
    _, path = outside_learner
    res = train_learner(LearnerSpec("mine", path, None, {"step": 3}), window, k=10, register="botify-i2i-test")
    back = learned_format.read(versions.fetch(res.version, "botify-i2i-test"))
    # the learner's own policy key stays; the window's estimates fill the rest
    assert back.policy == {**policy_params.policy(window.policy_estimates), "discount": 0.8}
    assert back.learner["config"]["step"] == 3
    assert np.load(back.model / "step.npy", allow_pickle=False).tolist() == [3]
    assert np.array_equal(np.asarray(back.lists), res.lists)
    # the planted world's artist is track % 30: track 0's own artist (30, 60) leads, then 3, 6, ...
    assert back.lists[0, :4].tolist() == [30, 60, 3, 6]


def test_fetch_refuses_a_version_that_is_not_a_learned_one_and_names_what_exists(planted, repo):
    from training.learning.train import TrainConfig, train
    world, log, _ = planted
    res = train(TrainConfig.from_yaml(repo / "training/config/course.yml", max_epochs=1), [str(log)], str(world),
                register="botify-i2i-old", progress=False)
    with pytest.raises(tracking.RegistryError, match="not a learned version"):
        versions.fetch(res.version, "botify-i2i-old")
    with pytest.raises(tracking.RegistryError, match="registered versions"):
        versions.fetch("99", "botify-i2i-old")


def test_lists_a_service_would_refuse_are_never_registered(window, tmp_path, monkeypatch):
    (tmp_path / "bad_learner.py").write_text(textwrap.dedent('''
        import numpy as np
        from training.learning.learners.base import Learned, Learner
        class Wide(Learner):
            def learn(self, window, k, workdir):
                return Learned(np.full((window.catalog.size, k), window.catalog.size, dtype=np.int32))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    before = len(MlflowClient().search_model_versions("name='botify-i2i-bad'"))
    with pytest.raises(LearnerError, match="refuse.*outside the catalog"):
        train_learner(LearnerSpec("bad", "bad_learner:Wide"), window, k=5, register="botify-i2i-bad")
    assert len(MlflowClient().search_model_versions("name='botify-i2i-bad'")) == before == 0


def test_the_learn_command_says_what_is_wrong(planted, capsys):
    world, log, _ = planted
    assert learn_main(["--learner", "nope", "--log", str(log), "--world", str(world)]) == 2
    assert "not one of" in capsys.readouterr().err
    assert learn_main(["--learner", "als", "--set", "factors", "--log", str(log), "--world", str(world)]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    rc = learn_main(["--learner", "cooccurrence", "--set", "shrink=2", "--log", str(log), "--world", str(world),
                     "--days", "1", "--k", "10", "--register", ""])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["version"] is None and out["figures"]["tracks_with_neighbours"] > 0


def test_an_artist_version_ships_its_exploration_table_to_the_service_through_bentoml(window, tmp_path):
    """The version's explore.npz and policy.json travel with its lists into the BentoML model the
    service serves, where the exploring policy finds them beside its i2i table."""
    from pathlib import Path

    import bentoml

    from service import recommenders as recs
    from service.artifacts import Tables
    from service.catalog import load_catalog
    from training.registry.export import import_version
    res = train_learner(LearnerSpec("artist", "artist", "training/config/learners/artist.yml"), window, k=20,
                        register="botify-i2i-test")
    folder = versions.fetch(res.version, "botify-i2i-test", dst=tmp_path / "v")
    assert (folder / learned_format.EXPLORE).is_file()
    tag = import_version(res.version, bento_name="botify-explore-test", name="botify-i2i-test")
    model = bentoml.models.get(tag)
    stored = {p.name for p in Path(model.path).iterdir()}
    assert {"i2i.npy", "i2i.jsonl", learned_format.POLICY, learned_format.EXPLORE} <= stored
    assert "context.npy" not in stored, "a learner without an embedding model exports no embedding tables"
    cat = load_catalog(window.world / "public" / "tracks.json")
    rec = recs.build("x", {"kind": "exploring", "i2i": f"bentoml:{tag}", "explore": 0.3}, cat, tmp_path,
                     Tables(tmp_path, len(cat)))
    cand, _ = learned_format.read_explore(folder / learned_format.EXPLORE)
    assert sum(len(r) for r in rec.x_rows) == int((cand >= 0).sum())


def test_an_exploration_table_a_service_would_refuse_is_never_registered(window, tmp_path, monkeypatch):
    (tmp_path / "bad_table.py").write_text(textwrap.dedent('''
        import numpy as np
        from training.learning.layout import lay_out
        from training.learning.learners.base import Learned, Learner
        class Short(Learner):
            def learn(self, window, k, workdir):
                n = window.catalog.size
                lists = lay_out((np.arange(n)[:, None] + np.arange(1, k + 1)) % n, window.catalog, k, self.layout())
                return Learned(lists, explore=(np.zeros((3, 2), np.int32), np.ones((3, 2), np.float32)))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(LearnerError, match="exploration table the service would refuse.*another world"):
        train_learner(LearnerSpec("bad", "bad_table:Short"), window, k=5, register="botify-i2i-badx")
    assert not MlflowClient().search_model_versions("name='botify-i2i-badx'")
