"""Run the real BentoML service as a subprocess: what training's `collect`, the experiment
and the tests use, so they exercise exactly what users run.

    with ServiceProcess("service/config/cold_start.yml") as svc:
        requests.post(f"{svc.url}/next/1", json={"track": 0, "time": 1.0})

Stopping reaches every process of the service, not only the arbiter's process group:
BentoML starts each worker in a session of its own, and a worker whose arbiter died is
re-parented away from us. Each service carries a marker in its environment
(`BOTIFY_SERVICE=<id>`, inherited by its workers) that `stop` looks for; the arbiter dies
with the process that started it (PR_SET_PDEATHSIG) and each worker with its arbiter
(`service/seam.py`), so nothing outlives a SIGKILLed job either. See `service.procs`.
"""
from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import TracebackType
from typing import Callable

from service import procs

REPO = Path(__file__).resolve().parents[1]


class ServiceStartError(RuntimeError):
    """The service did not become ready; the message ends with the tail of its output."""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to, from below the kernel's ephemeral range.

    A port the kernel hands out for `bind(0)` is free only until it hands it out again, and
    between this check and the server's own bind something else may get it: BentoML's
    arbiter binds its ZeroMQ endpoints that way, and in one CI run the service's readiness
    probe got a ZeroMQ greeting from its port. Below the range the kernel never hands a port
    out by itself, so only a port someone names (another free_port) can take it. Which port
    is no part of any result, so it is drawn without a seed."""
    low, _ = _ephemeral_range()
    first = 20000 if low > 21024 else 1024
    draw = random.SystemRandom()
    for _ in range(100):
        port = draw.randrange(first, low) if low > first else 0
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ServiceStartError(f"no free port in {first}..{low - 1} on {host}: pass a port explicitly")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def wait_ready(url: str, timeout: float, exited: Callable[[], bool]) -> str:
    """Poll `url/readyz` until it answers 200: "ready"; or the server is gone (`exited()`):
    "exited"; or `timeout` seconds passed: "timeout". Whatever runs the server (a process,
    a container) asks the same question the same way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited():
            return "exited"
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                if r.status == 200:
                    return "ready"
        # not listening yet, or something that is not our server yet (a port another
        # program held a moment ago answers with its own protocol: BadStatusLine)
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    return "timeout"


class ServiceProcess:
    """`bentoml serve service.service:Botify --port P --host H` with BOTIFY_CONFIG, ready on enter,
    stopped on exit with every process it started (SIGTERM, SIGKILL after `stop_timeout`).

    Leaving the block normally waits up to `stop_timeout` for BentoML's orderly shutdown (a
    healthy server takes well under a second); leaving it by an exception
    (a failed day, a cancelled job, which must be gone within seconds) waits `abort_timeout`."""

    def __init__(self, config: str, port: int | None = None, workers: int = 1, env: dict | None = None,
                 cwd: str | Path | None = None, start_timeout: float = 90.0, stop_timeout: float = 20.0,
                 abort_timeout: float = 3.0,
                 target: str = "service.service:Botify", host: str = "127.0.0.1") -> None:
        self.config = str(config)
        self.port = port or free_port()
        self.workers = workers
        self.env = env or {}
        self.cwd = Path(cwd) if cwd else REPO
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.abort_timeout = abort_timeout
        self.target = target
        self.host = host  # the address it binds; loopback unless told otherwise
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.marker = ""            # this service's BOTIFY_SERVICE value, set by start()
        self.strays: list[procs.Proc] = []   # what outlived the arbiter at the last stop()
        self._out = None

    def __enter__(self) -> "ServiceProcess":
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop(self.stop_timeout if et is None else self.abort_timeout)

    def start(self) -> None:
        if port_in_use(self.port):
            raise ServiceStartError(f"port {self.port} is already in use: stop what listens there or pick another port")
        self.marker = uuid.uuid4().hex
        env = {**os.environ, **self.env, "BOTIFY_CONFIG": self.config, "BOTIFY_WORKERS": str(self.workers),
               "PYTHONUNBUFFERED": "1", procs.SERVICE_ENV: self.marker}
        bentoml = Path(sys.executable).with_name("bentoml")
        cmd = [str(bentoml) if bentoml.exists() else "bentoml", "serve", self.target, "--port", str(self.port),
               "--host", self.host]
        self._out = tempfile.TemporaryFile()
        # its own session: killpg reaches it without touching us, and a Ctrl-C at the job's
        # terminal reaches the job, which stops the service in order (its workers, their logs)
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=procs.child_preexec())
        state = wait_ready(self.url, self.start_timeout, exited=lambda: self.proc.poll() is not None)
        if state == "ready":
            return
        tail = self.output()
        self.stop()
        if state == "exited":
            raise ServiceStartError(f"service exited with code {self.proc.returncode} before it was ready:\n{tail}")
        raise ServiceStartError(f"service not ready on {self.url} after {self.start_timeout:.0f}s:\n{tail}")

    def output(self, lines: int = 40) -> str:
        """The tail of the service's combined stdout/stderr."""
        if self._out is None:
            return ""
        self._out.flush()
        self._out.seek(0)
        return "\n".join(self._out.read().decode(errors="replace").splitlines()[-lines:])

    def processes(self) -> list[procs.Proc]:
        """Every live process of this service (arbiter, workers), wherever it was re-parented."""
        if self.proc is None:
            return []
        return procs.marked(procs.SERVICE_ENV, self.marker)

    def stop(self, timeout: float | None = None) -> list[procs.Proc]:
        """Stop the server and everything it started; returns the processes that outlived
        the arbiter (and were then killed), also kept in `.strays`; a healthy stop returns [].

        The arbiter gets SIGTERM first, so BentoML shuts its workers down in order (their
        event logs closed), SIGKILL after `timeout` (default `stop_timeout`); whatever still
        carries this service's marker afterwards (a worker orphaned by a crashed arbiter, one
        that ignored the shutdown) is stopped too.
        """
        if self.proc is None:
            return []
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.strays = self.processes()
        if self.strays:
            left = procs.stop(self.strays, timeout=2.0)
            print(f"service {self.url}: {len(self.strays)} process(es) outlived the server and were stopped: "
                  + "; ".join(map(str, self.strays))
                  + (f"; STILL RUNNING after SIGKILL: {'; '.join(map(str, left))}" if left else ""),
                  file=sys.stderr, flush=True)
        return self.strays
