"""Stopping the real BentoML service reaches every process it started, even when its
arbiter, or the process that started it, was killed with SIGKILL (issue 11: workers live
in sessions of their own, so a `killpg` of the arbiter's group never reached them)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from service import procs
from service.launch import ServiceProcess, port_in_use

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not procs.PROC.is_dir(), reason="needs Linux /proc")]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, small_catalog: Path) -> Path:
    p = tmp_path / "service.yml"
    p.write_text(yaml.safe_dump({
        "catalog": str(small_catalog), "seed": 1, "event_log": {"dir": str(tmp_path / "logs")},
        "session_store": {"kind": "memory", "ttl_seconds": 60},
        "recommenders": {"random": {"kind": "random"}}, "experiments": [{"name": "X", "arms": {"C": "random"}}]}))
    return p


def _gone_within(find, seconds: float) -> list:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not find():
            return []
        time.sleep(0.05)
    return find()


def test_workers_die_with_a_sigkilled_arbiter_and_free_the_port(config):
    svc = ServiceProcess(str(config))
    svc.start()
    try:
        workers = [p for p in svc.processes() if p.pid != svc.proc.pid]
        assert workers and all(p.ppid == svc.proc.pid for p in workers)
        assert all(procs.alive(w) for w in workers)
        os.kill(svc.proc.pid, signal.SIGKILL)
        assert _gone_within(svc.processes, 10) == [], "a worker outlived its SIGKILLed arbiter"
        assert not port_in_use(svc.port)
    finally:
        assert svc.stop() == []       # nothing was left to clean up


def test_nothing_outlives_a_sigkilled_starter(config):
    """The job that started the service is SIGKILLed: none of its code runs, yet the arbiter
    gets SIGTERM from the kernel and stops its workers."""
    mark = uuid.uuid4().hex
    code = ("import sys, time\nfrom service.launch import ServiceProcess\n"
            f"s = ServiceProcess({str(config)!r}); s.start()\nprint(s.port, flush=True)\ntime.sleep(120)\n")
    job = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "LC_TEST_MARK": mark},
                           stdout=subprocess.PIPE, text=True)
    try:
        port = int(job.stdout.readline())
        started = procs.marked("LC_TEST_MARK", mark)
        assert len(started) >= 2 and any("_bentoml_impl.worker" in p.cmd for p in started)
        job.kill()
        job.wait()
        assert _gone_within(lambda: procs.marked("LC_TEST_MARK", mark), 15) == []
        assert not port_in_use(port)
    finally:
        job.kill()
        procs.stop(procs.marked("LC_TEST_MARK", mark), timeout=1)


def test_stop_finds_and_kills_a_process_of_the_service_outside_its_tree(config):
    """Whatever carries the service's marker is the service's, wherever it was re-parented:
    a stand-in for a worker orphaned in its own session that ignores SIGTERM."""
    with ServiceProcess(str(config)) as svc:
        stray = subprocess.Popen(
            [sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                   "print('ok', flush=True)\ntime.sleep(120)"],
            env={**os.environ, procs.SERVICE_ENV: svc.marker}, start_new_session=True,
            stdout=subprocess.PIPE, text=True)
        assert stray.stdout.readline().strip() == "ok"
    try:
        assert [p.pid for p in svc.strays] == [stray.pid]
        assert stray.wait(timeout=5) == -signal.SIGKILL
        assert svc.processes() == []
    finally:
        stray.kill()
