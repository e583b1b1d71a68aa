"""The promotion's commit: serialised across runs (an exclusive lock beside the tracking
store), compare-and-set on `@champion`, atomic with what it deploys, and not cut in two by
a cancel. Real processes racing for the lock, a real (throwaway) registry."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from training.registry import lock, promotion, tracking

REPO = Path(__file__).resolve().parents[2]
NAME = "botify-i2i-test"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An sqlite store with MLflow's tables, made once (its migrations take seconds)."""
    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


# What `promotion.deploy` does, minus loading a real model: export each role's lists into
# the BentoML model its target names, labelled with the registry version it came from.
FAKE_DEPLOY = """
def fake_deploy(targets, versions, name, i2i=None):
    import os, shutil, bentoml
    out = {}
    for role, target in targets.items():
        if str(versions[role]) == "fail":
            raise RuntimeError("export failed")
        with bentoml.models.create(target, labels={"mlflow_version": str(versions[role])}) as m:
            shutil.copy(i2i[role], os.path.join(m.path, "i2i.jsonl"))
        out[role] = str(m.tag)
    return out
"""
exec(FAKE_DEPLOY)


def served(target: str) -> str:
    """The registry version the service would load as `target:latest`."""
    import bentoml
    return bentoml.models.get(f"{target}:latest").info.labels["mlflow_version"]


@pytest.fixture
def registry(tmp_path, monkeypatch, empty_store):
    """A throwaway store with three versions of NAME, version 1 the champion and deployed
    (the BentoML model `target:latest` holds its lists), and each version's i2i file."""
    import shutil
    import uuid

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)   # (set_registry_uri exports it: restored below)
    # MLflow keeps these process-wide: put back whatever was there (even "unset") afterwards,
    # or later tests' MlflowClient() would read this test's store
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    monkeypatch.setattr(promotion, "deploy", fake_deploy)
    client = MlflowClient(uri, uri)
    client.create_registered_model(NAME)
    files = {}
    for v in ("1", "2", "3"):
        assert str(client.create_model_version(NAME, source=str(tmp_path / f"src{v}")).version) == v
        files[v] = tmp_path / f"i2i-v{v}.jsonl"
        files[v].write_text(f'{{"track": 0, "recommendations": [{v}]}}\n')
    client.set_registered_model_alias(NAME, tracking.CHAMPION, "1")
    target = f"botify-test-{uuid.uuid4().hex[:8]}"     # the session's BENTOML_HOME is shared
    fake_deploy({"champion": target}, {"champion": "1"}, NAME, i2i={"champion": files["1"]})
    return client, files, target, uri


def _env(uri: str) -> dict:
    """A subprocess's environment on this test's registry and on the BentoML store this process
    reads (BentoML fixes it at its first use in the session, maybe under another module's home)."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    return {**os.environ, "MLFLOW_TRACKING_URI": uri, "BENTOML_HOME": BentoMLContainer.bentoml_home.get()}


def champion(client) -> str:
    return str(client.get_model_version_by_alias(NAME, tracking.CHAMPION).version)


RACER = FAKE_DEPLOY + """
import json, os, sys, time
import mlflow
from training.registry import promotion
mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"]); mlflow.set_registry_uri(os.environ["MLFLOW_TRACKING_URI"])
version, name, target, src, trace = sys.argv[1:6]

def slow_deploy(targets, versions, name, i2i=None):   # room for the other run to cut in
    with open(trace, "a") as fh: fh.write(f"{version} in {time.time()}\\n")
    time.sleep(1.0)
    out = fake_deploy(targets, versions, name, i2i)
    with open(trace, "a") as fh: fh.write(f"{version} out {time.time()}\\n")
    return out

promotion.deploy = slow_deploy
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()                      # both start together
done = promotion.commit(version, name, "1", {"champion": target}, {"champion": version}, i2i={"champion": src})
print(json.dumps({"version": version, "promoted": done.promoted, "reason": done.reason}))
"""


def test_two_concurrent_promotions_serialise_and_the_second_sees_the_first(registry, tmp_path):
    """Both runs started while v1 was champion and both won their A/B test. Without the lock
    both would export and move the alias, interleaved; with it, one commits and the other
    finds `@champion` moved and promotes nothing."""
    client, files, target, uri = registry
    trace = tmp_path / "trace.txt"
    env = _env(uri)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, v, NAME, target, str(files[v]), str(trace)],
                               cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
              for v in ("2", "3")]
    for r in racers:
        assert r.stdout.readline().strip() == "ready"
    for r in racers:
        r.stdin.write("go\n")
        r.stdin.flush()
    results = []
    for r in racers:
        out, _ = r.communicate(timeout=120)
        assert r.returncode == 0, out
        results.append(json.loads(out.strip().splitlines()[-1]))
    winners = [x for x in results if x["promoted"]]
    losers = [x for x in results if not x["promoted"]]
    assert len(winners) == 1 and len(losers) == 1, results
    assert "overtaken" in losers[0]["reason"] and "from version 1 to version " + winners[0]["version"] in losers[0]["reason"]
    # one export at a time, and the alias names the version the service would load
    events = [line.split() for line in trace.read_text().splitlines()]
    assert [e[1] for e in events] == ["in", "out"], events      # the loser never exported
    assert champion(client) == winners[0]["version"] == served(target)


def test_a_failed_alias_move_undoes_the_export(registry, monkeypatch):
    client, files, target, _ = registry

    def broken(version, name):
        raise RuntimeError("registry unreachable")
    monkeypatch.setattr(promotion, "promote", broken)
    with pytest.raises(RuntimeError, match="unreachable"):
        promotion.commit("2", NAME, "1", {"champion": target}, {"champion": "2"}, i2i={"champion": files["2"]})
    assert served(target) == "1" and champion(client) == "1"


def test_an_export_that_fails_half_way_is_undone(registry):
    """The first role's model is exported, the second's fails: the first is deleted again."""
    client, files, target, _ = registry
    other = target + "-control"
    with pytest.raises(RuntimeError, match="export failed"):
        promotion.commit("2", NAME, "1", {"champion": target, "baseline": other},
                         {"champion": "2", "baseline": "fail"}, i2i={"champion": files["2"], "baseline": files["3"]})
    assert served(target) == "1" and champion(client) == "1"


def test_a_commit_replaces_only_the_champion_the_run_started_with(registry):
    client, files, target, _ = registry
    done = promotion.commit("2", NAME, None, {"champion": target}, {"champion": "2"}, i2i={"champion": files["2"]})
    assert not done.promoted and "from no champion to version 1" in done.reason
    assert served(target) == "1"
    done = promotion.commit("2", NAME, "1", {"champion": target}, {"champion": "2"}, i2i={"champion": files["2"]})
    assert done.promoted and list(done.deployed) == ["champion"]
    assert champion(client) == "2" == served(target)


def test_a_failure_to_record_the_promotion_undoes_it(registry):
    """The caller's record (the run's `promotion` tag) is part of the commit: if it cannot
    be written, the alias goes back and the export is deleted."""
    client, files, target, _ = registry

    def record(done):
        raise OSError("tracking store unreachable")
    with pytest.raises(OSError, match="unreachable"):
        promotion.commit("2", NAME, "1", {"champion": target}, {"champion": "2"}, i2i={"champion": files["2"]},
                         record=record)
    assert champion(client) == "1" == served(target)


def test_a_cancel_during_the_commit_lands_after_it_not_inside_it(registry, tmp_path):
    """SIGTERM arrives while the lists are being exported: the commit completes (alias and
    served model agree), then the job is cancelled."""
    client, files, target, uri = registry
    code = FAKE_DEPLOY + f"""
import os, signal, sys
import mlflow
from training.jobs import lifecycle
from training.registry import promotion
mlflow.set_tracking_uri({uri!r}); mlflow.set_registry_uri({uri!r})
job = lifecycle.Job("test").start()
def deploy(targets, versions, name, i2i=None):
    os.kill(os.getpid(), signal.SIGTERM)
    return fake_deploy(targets, versions, name, i2i)
promotion.deploy = deploy
try:
    promotion.commit("2", {NAME!r}, "1", {{"champion": {target!r}}}, {{"champion": "2"}},
                     i2i={{"champion": {str(files["2"])!r}}})
except lifecycle.Cancelled as c:
    print("cancelled after the commit", c.code)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(uri),
                          capture_output=True, text=True, timeout=120)
    assert "cancelled after the commit 143" in proc.stdout, proc.stdout + proc.stderr
    assert champion(client) == "2" == served(target)


def test_where_the_lock_lives(tmp_path):
    """Beside a local store (an flock: one machine); in PostgreSQL for a shared one (named, or the
    store itself); a shared store with none configured is refused, never promoted unlocked."""
    locate = lock.locate
    assert locate(f"sqlite:///{tmp_path}/store/mlflow.db", {}) == lock.Location("file", str(tmp_path / "store" / lock.LOCK_FILE))
    assert locate(str(tmp_path / "mlruns"), {}).where == str(tmp_path / "mlruns" / lock.LOCK_FILE)
    pg = "postgresql://botify@db:5432/mlflow"
    assert locate("http://tracking:5000", {lock.LOCK_ENV: pg}) == lock.Location("postgresql", pg)
    assert locate(f"sqlite:///{tmp_path}/mlflow.db", {lock.LOCK_ENV: pg}).kind == "postgresql"   # named: it wins
    assert locate("postgresql+psycopg2://u:p@db/mlflow", {}) == lock.Location("postgresql", "postgresql+psycopg2://u:p@db/mlflow")
    with pytest.raises(lock.LockError, match=rf"registry at http://tracking:5000 is shared.*{lock.LOCK_ENV}=postgresql://"):
        locate("http://tracking:5000", {})
    with pytest.raises(lock.LockError, match="not a PostgreSQL URI"):
        locate("http://tracking:5000", {lock.LOCK_ENV: "redis://:secret@cache:6379/0"})


def test_a_shared_registry_without_a_lock_is_refused_and_nothing_changes(registry, monkeypatch):
    """A tracking server with no lock configured: the commit refuses before it reads or writes
    anything, with the fix in its message."""
    import mlflow
    client, files, target, uri = registry
    monkeypatch.delenv(lock.LOCK_ENV, raising=False)
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "http://tracking:5000")
    with pytest.raises(lock.LockError, match=f"no promotion lock.*{lock.LOCK_ENV}"):
        promotion.commit("2", NAME, "1", {"champion": target}, {"champion": "2"}, i2i={"champion": files["2"]})
    with pytest.raises(lock.LockError, match=lock.LOCK_ENV):
        lock.require_lock()
    assert served(target) == "1" and champion(client) == "1"


def test_bootstrap_makes_the_first_champion_and_never_replaces_one(registry):
    """A registry with no `@champion`: the status quo an A/B tested against becomes the first,
    exported under every target; a registry that has one keeps it."""
    client, files, target, _ = registry
    baseline = target + "-baseline"
    done = promotion.bootstrap("3", NAME, {"champion": target, "baseline": baseline}, files["3"])
    assert not done.promoted and "overtaken" in done.reason and champion(client) == "1" == served(target)
    client.delete_registered_model_alias(NAME, tracking.CHAMPION)
    done = promotion.bootstrap("3", NAME, {"champion": target, "baseline": baseline}, files["3"])
    assert done.promoted and sorted(done.deployed) == ["baseline", "champion"]
    assert champion(client) == "3" == served(target) == served(baseline)
