"""Fixtures every part's tests share: the small world and a real redis-server; and the
guard that keeps the tests out of the user's own stores.

Tests write only to temporary folders. Every test runs with MLFLOW_TRACKING_URI and
BENTOML_HOME pointing into this session's temp folder (a test that needs its own sets
its own), and the project's stores (`mlruns/`, `mlflow.db`, `data/`, `logs/`) are compared
before and after each test module: a module that changed them fails, naming the files.
The small world (`data/world-small`) is generated before the first snapshot, as
`make test` does, so only a test that writes into it fails.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.launch import free_port

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = REPO / "sim" / "config" / "small.yml"
# the user's stores: what tests must never change (relative to the repo)
GUARDED = ("mlruns", "mlflow.db", "data", "logs")


def store_snapshot(root: Path = REPO, guarded: tuple[str, ...] = GUARDED) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every file and folder under the guarded paths."""
    out: dict[str, tuple[int, int]] = {}
    for name in guarded:
        top = root / name
        if not top.exists():
            continue
        todo = [top]
        while todo:
            p = todo.pop()
            try:
                st = p.lstat()
            except OSError:
                continue
            out[str(p.relative_to(root))] = (st.st_mtime_ns, st.st_size)
            if p.is_dir() and not p.is_symlink():
                todo.extend(p.iterdir())
    return out


def store_changes(before: dict, after: dict) -> list[str]:
    """What changed between two snapshots, as `+ path`, `- path`, `~ path` (at most 20)."""
    out = [f"+ {p}" for p in sorted(after.keys() - before.keys())]
    out += [f"- {p}" for p in sorted(before.keys() - after.keys())]
    out += [f"~ {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return out[:20] + ([f"... and {len(out) - 20} more"] if len(out) > 20 else [])


def pytest_sessionstart(session: pytest.Session) -> None:
    # the one write to data/ the tests may cause, done before the guard's first look
    subprocess.run([sys.executable, "-m", "sim.world", "--config", str(SMALL_CONFIG)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session", autouse=True)
def private_stores(tmp_path_factory: pytest.TempPathFactory):
    """MLflow and BentoML default to throwaway stores for the whole session."""
    d = tmp_path_factory.mktemp("stores")
    with pytest.MonkeyPatch.context() as env:   # restored when the session ends
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{d / 'mlflow.db'}")
        env.setenv("BENTOML_HOME", str(d / "bentoml"))
        env.setenv("BENTOML_DO_NOT_TRACK", "true")
        env.delenv("MLFLOW_RUN_ID", raising=False)   # a session started by `mlflow run` must not log into its run
        yield d


@pytest.fixture(scope="module", autouse=True)
def user_stores_untouched(request: pytest.FixtureRequest):
    """Fails the module whose tests changed the user's mlruns/, mlflow.db, data/ or logs/."""
    before = store_snapshot()
    yield
    changed = store_changes(before, store_snapshot())
    if changed:
        pytest.fail(f"{request.node.nodeid} wrote into the project's own stores (tests must use temporary "
                    f"folders: a tmp MLFLOW_TRACKING_URI, BENTOML_HOME, work dir):\n" + "\n".join(changed),
                    pytrace=False)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def small_world() -> Path:
    """The small world of sim/config/small.yml, generated once (idempotent)."""
    subprocess.run([sys.executable, "-m", "sim.world", "--config", str(SMALL_CONFIG)],
                   cwd=REPO, check=True)
    import yaml
    cfg = yaml.safe_load(SMALL_CONFIG.read_text())
    return (REPO / cfg["world"]["dir"]).resolve()


@pytest.fixture
def experiment_config(tmp_path: Path):
    """`make(**changes)` -> a copy of the experiment's YAML whose work dir is under tmp_path
    (the default, data/experiments/, is the user's): what a test passes as `--arms`."""
    import yaml

    def make(**changes) -> Path:
        cfg = yaml.safe_load((REPO / "training" / "config" / "experiment.yml").read_text())
        cfg["workdir"] = str(tmp_path / "experiments")
        cfg.update(changes)
        path = tmp_path / "experiment.yml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path
    return make


@pytest.fixture(scope="session")
def small_catalog(small_world: Path) -> Path:
    return small_world / "public" / "tracks.json"


OUTSIDE_LEARNER = '''
"""A learner from outside the project: each track's list is the tracks after it by id."""
from dataclasses import dataclass
import numpy as np
from training.learning.layout import Layout, lay_out
from training.learning.learners.base import Learned, Learner, save_arrays

@dataclass
class Settings(Layout):
    step: int = 1

class Shift(Learner):
    Settings = Settings

    def learn(self, window, k, workdir):
        n = window.catalog.size
        ranked = (np.arange(n)[:, None] + self.settings.step * np.arange(1, 4 * k)[None, :]) % n
        return Learned(lay_out(ranked, window.catalog, k, self.layout()), {"discount": 0.8},
                       {"events": float(len(window.events))}, save_arrays(workdir, step=np.array([self.settings.step])))
'''


@pytest.fixture
def outside_learner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A learner in a package outside the project (written to a temporary folder put on
    sys.path): (that folder, for a subprocess's PYTHONPATH; the learner's import path)."""
    pkg = tmp_path / "outside" / "outside_learners"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "shift.py").write_text(OUTSIDE_LEARNER)
    monkeypatch.syspath_prepend(str(pkg.parent))
    return pkg.parent, "outside_learners.shift:Shift"


@pytest.fixture(scope="session")
def redis_url():
    """A throwaway redis-server on a free loopback port (installed by `make redis`)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: run `make redis` (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)
