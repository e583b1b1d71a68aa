"""Run the real BentoML service as a subprocess: what training's `collect`, the experiment
and the tests use, so they exercise exactly what users run.

    with ServiceProcess("service/config/cold_start.yml") as svc:
        requests.post(f"{svc.url}/next/1", json={"track": 0, "time": 1.0})
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[1]


class ServiceStartError(RuntimeError):
    """The service did not become ready; the message ends with the tail of its output."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


class ServiceProcess:
    """`bentoml serve service.service:Botify --port P --host H` with BOTIFY_CONFIG, ready on enter,
    its whole process group stopped on exit (SIGTERM, then SIGKILL after `stop_timeout`)."""

    def __init__(self, config: str, port: int | None = None, workers: int = 1, env: dict | None = None,
                 cwd: str | Path | None = None, start_timeout: float = 90.0, stop_timeout: float = 20.0,
                 target: str = "service.service:Botify", host: str = "127.0.0.1") -> None:
        self.config = str(config)
        self.port = port or free_port()
        self.workers = workers
        self.env = env or {}
        self.cwd = Path(cwd) if cwd else REPO
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.target = target
        self.host = host  # the address it binds; loopback unless told otherwise
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._out = None

    def __enter__(self) -> "ServiceProcess":
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if port_in_use(self.port):
            raise ServiceStartError(f"port {self.port} is already in use: stop what listens there or pick another port")
        env = {**os.environ, **self.env, "BOTIFY_CONFIG": self.config, "BOTIFY_WORKERS": str(self.workers),
               "PYTHONUNBUFFERED": "1"}
        bentoml = Path(sys.executable).with_name("bentoml")
        cmd = [str(bentoml) if bentoml.exists() else "bentoml", "serve", self.target, "--port", str(self.port),
               "--host", self.host]
        self._out = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.output()
                self.stop()
                raise ServiceStartError(f"service exited with code {self.proc.returncode} before it was ready:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        tail = self.output()
        self.stop()
        raise ServiceStartError(f"service not ready on {self.url} after {self.start_timeout:.0f}s:\n{tail}")

    def output(self, lines: int = 40) -> str:
        """The tail of the service's combined stdout/stderr."""
        if self._out is None:
            return ""
        self._out.flush()
        self._out.seek(0)
        return "\n".join(self._out.read().decode(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        else:
            try:  # the server may have left workers behind in its group
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
