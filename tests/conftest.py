"""Fixtures every part's tests share: the small world and a real redis-server."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = REPO / "sim" / "config" / "small.yml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="session")
def small_catalog(small_world: Path) -> Path:
    return small_world / "public" / "tracks.json"


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
