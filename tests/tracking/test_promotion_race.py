"""Promotion across machines: two jobs that share nothing but a tracking server on PostgreSQL
(and the database's advisory lock) finish together; exactly one moves `@champion`, the other
says it was overtaken, and what each exports stays all or nothing. Real processes, each in a
folder of its own (its own working directory, BentoML store and temp folder), a real
`mlflow server` on a real PostgreSQL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from training.registry import lock, promotion, tracking

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def postgres(tracking_server_handle) -> str:
    """The promotion lock's database: the tracking server's own PostgreSQL (what `make
    tracking-server` prints as BOTIFY_PROMOTION_LOCK)."""
    return tracking_server_handle.lock_uri()
REPO = Path(__file__).resolve().parents[2]
NAME = "botify-i2i-race"
ROUNDS = 20

# One machine's job, reduced to its commit: for each line "VERSION EXPECTED" on stdin, the
# commit the experiment and the loop make (training.registry.promotion.commit), its export a
# BentoML model in this folder's own store that takes a while (room for the other to cut in).
RACER = """
import json, os, sys, time
import bentoml
from training.registry import promotion, tracking

def slow_deploy(targets, versions, name, i2i=None):
    with open("trace", "a") as fh: fh.write(f"in {time.time()}\\n")
    time.sleep(0.3)
    out = {}
    for role, target in targets.items():
        with bentoml.models.create(target, labels={"mlflow_version": str(versions[role])}) as m:
            pass
        out[role] = str(m.tag)
    with open("trace", "a") as fh: fh.write(f"out {time.time()}\\n")
    return out

promotion.deploy = slow_deploy
tracking.setup()
print("ready", flush=True)
for line in sys.stdin:
    version, expected = line.split()
    done = promotion.commit(version, sys.argv[1], expected, {"champion": "botify-champion-lists"},
                            {"champion": version})
    print(json.dumps({"version": version, "promoted": done.promoted, "reason": done.reason}), flush=True)
"""


def _clone(root: Path, env: dict) -> dict:
    """A machine's own folder: its working directory, BentoML store and temp folder."""
    (root / "tmp").mkdir(parents=True)
    return {**env, "BENTOML_HOME": str(root / "bentoml"), "TMPDIR": str(root / "tmp"), "PYTHONPATH": str(REPO)}


def _served(home: Path) -> str | None:
    """The registry version `botify-champion-lists:latest` holds in a clone's BentoML store."""
    out = subprocess.run([sys.executable, "-c", "import bentoml; m = bentoml.models.get('botify-champion-lists:latest');"
                          "print(m.info.labels['mlflow_version'])"], env={**os.environ, "BENTOML_HOME": str(home)},
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def test_two_clones_promote_at_once_exactly_one_wins_20_of_20(tracking_server, postgres, tmp_path):
    import uuid
    name = f"{NAME}-{uuid.uuid4().hex[:8]}"   # the server may outlive one test run
    client = MlflowClient(tracking_server, tracking_server)
    client.create_registered_model(name)
    for v in ("1", "2", "3"):
        assert str(client.create_model_version(name, source=f"s3://botify-race/v{v}").version) == v
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update({"MLFLOW_TRACKING_URI": tracking_server, lock.LOCK_ENV: postgres})
    clones = {v: tmp_path / f"clone-{v}" for v in ("2", "3")}
    racers = {v: subprocess.Popen([sys.executable, "-c", RACER, name], cwd=root, env=_clone(root, env),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
              for v, root in clones.items()}
    try:
        for r in racers.values():
            assert r.stdout.readline().strip() == "ready"
        wins, waits = {"2": 0, "3": 0}, []
        for round_ in range(ROUNDS):
            client.set_registered_model_alias(name, tracking.CHAMPION, "1")
            before = {v: _count(root / "trace") for v, root in clones.items()}
            for v, r in racers.items():          # both at once, both having started when v1 was champion
                r.stdin.write(f"{v} 1\n")
                r.stdin.flush()
            results = {v: _result(r, waits) for v, r in racers.items()}
            winners = [v for v, x in results.items() if x["promoted"]]
            assert len(winners) == 1, (round_, results)
            (winner,), (loser,) = winners, [v for v in results if v not in winners]
            assert "overtaken" in results[loser]["reason"], results[loser]
            assert f"from version 1 to version {winner}" in results[loser]["reason"]
            assert str(client.get_model_version_by_alias(name, tracking.CHAMPION).version) == winner
            # all or nothing on each machine: the winner exported once, the loser never did
            assert _count(clones[winner] / "trace") == before[winner] + 1
            assert _count(clones[loser] / "trace") == before[loser]
            wins[winner] += 1
        for v, root in clones.items():           # each store serves the last version it promoted
            assert (_served(root / "bentoml") is None) == (wins[v] == 0)
        print(f"wins over {ROUNDS} rounds: {wins}; rounds where the other was waiting for the lock: {len(waits)}")
    finally:
        for r in racers.values():
            r.stdin.close()
            r.wait(timeout=60)


def _result(racer: subprocess.Popen, waits: list[str]) -> dict:
    """A racer's answer, after the lines it printed while it waited for the lock."""
    while (line := racer.stdout.readline()).startswith("[promotion] waiting"):
        waits.append(line)
    return json.loads(line)


def _count(trace: Path) -> int:
    return sum(1 for line in trace.read_text().splitlines() if line.startswith("in ")) if trace.exists() else 0


HOLDER = """
import sys, time
from training.registry.lock import promotion_lock
with promotion_lock(sys.argv[1], tracking_uri="http://unused", say=lambda m: None):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_server_releases_a_dead_holders_lock(postgres, tmp_path):
    """A job killed while it holds the lock (SIGKILL: no code of its own runs) does not leave
    it stuck: its session ends with it, and the next job takes the lock at once."""
    env = {**os.environ, lock.LOCK_ENV: postgres, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, NAME], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        said = []
        os.environ[lock.LOCK_ENV] = postgres
        try:
            with pytest.raises(lock.LockError, match="held the promotion lock"):
                with lock.promotion_lock(NAME, tracking_uri="http://unused", timeout=1.0, say=said.append):
                    pass
            assert said and "waiting for another run's promotion (another run (botify-promotion" in said[0]
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            t0 = time.monotonic()
            with lock.promotion_lock(NAME, tracking_uri="http://unused", timeout=30.0):
                waited = time.monotonic() - t0
        finally:
            del os.environ[lock.LOCK_ENV]
        assert waited < 30.0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


@pytest.fixture
def server_registry(tracking_server, postgres, monkeypatch, tmp_path):
    """This process pointed at the tracking server, the lock in its PostgreSQL, a model of three
    versions with v1 the champion, and a BentoML store of its own."""
    import uuid

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", tracking_server)
    monkeypatch.setenv(lock.LOCK_ENV, postgres)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    mlflow.set_tracking_uri(tracking_server)
    mlflow.set_registry_uri(tracking_server)
    name = f"botify-i2i-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_server, tracking_server)
    client.create_registered_model(name)
    for v in ("1", "2", "3"):
        client.create_model_version(name, source=f"s3://botify-race/v{v}")
    client.set_registered_model_alias(name, tracking.CHAMPION, "1")
    return client, name


def test_a_lost_lock_undoes_the_export_and_leaves_the_alias(server_registry, postgres, monkeypatch):
    """The lock's database session ends while the commit exports (a network cut, a restarted
    database): another job may hold the lock now, so the alias is not moved and the export is
    deleted again."""
    import bentoml
    import psycopg2
    client, name = server_registry
    target = f"botify-lost-{name[-8:]}"

    def deploy_then_lose_the_lock(targets, versions, name_, i2i=None):
        with bentoml.models.create(target, labels={"mlflow_version": versions["champion"]}) as m:
            pass
        conn = psycopg2.connect(postgres)
        conn.autocommit = True
        with conn.cursor() as cur:   # end every promotion session but this one
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name LIKE 'botify-promotion%' AND pid <> pg_backend_pid()")
        conn.close()
        return {"champion": str(m.tag)}
    monkeypatch.setattr(promotion, "deploy", deploy_then_lose_the_lock)
    with pytest.raises(lock.LockError, match="lock of .* was lost"):
        promotion.commit("2", name, "1", {"champion": target}, {"champion": "2"})
    assert str(client.get_model_version_by_alias(name, tracking.CHAMPION).version) == "1"
    with pytest.raises(bentoml.exceptions.NotFound):
        bentoml.models.get(f"{target}:latest")
