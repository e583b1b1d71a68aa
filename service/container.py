"""Run the packaged service as a container: what `make container-test` and the cold-start
benchmark use, so a container is exercised exactly as a deployment runs it.

    with ContainerService("botify:latest", env={"BOTIFY_CONFIG": "service/config/experiments.yml"}) as c:
        requests.post(f"{c.url}/next/1", json={"track": 0, "time": 1.0})

The engine here has no bridge network (container/engine.sh), so the container shares the
host's network (`--network host`) and the service binds 127.0.0.1 as it does outside.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import TracebackType

from service.launch import ServiceStartError, free_port, port_in_use, wait_ready


class ContainerService:
    """`docker run IMAGE serve --port P`, ready on enter (`/readyz`), stopped and removed on
    exit (`docker stop`: SIGTERM, then SIGKILL after `stop_timeout`)."""

    def __init__(self, image: str, port: int | None = None, env: dict | None = None,
                 volumes: dict[str | Path, str] | None = None, start_timeout: float = 120.0,
                 stop_timeout: int = 20, name: str | None = None) -> None:
        self.image = image
        self.port = port or free_port()
        self.env = env or {}
        self.volumes = volumes or {}
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.name = name or f"botify-{os.getpid()}-{self.port}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = False

    def __enter__(self) -> "ContainerService":
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def command(self) -> list[str]:
        cmd = ["docker", "run", "-d", "--name", self.name, "--network", "host"]
        for k, v in self.env.items():
            cmd += ["-e", f"{k}={v}"]
        for host, inside in self.volumes.items():
            cmd += ["-v", f"{Path(host).resolve()}:{inside}"]
        return cmd + [self.image, "serve", "--port", str(self.port)]

    def start(self) -> None:
        if port_in_use(self.port):
            raise ServiceStartError(f"port {self.port} is already in use: stop what listens there or pick another port")
        out = subprocess.run(self.command(), capture_output=True, text=True)
        if out.returncode != 0:
            raise ServiceStartError(f"docker run failed: {out.stderr.strip()[-2000:]} "
                                    f"(is the engine up? container/engine.sh; is the image built? make container)")
        self.started = True
        state = wait_ready(self.url, self.start_timeout, exited=self._exited)
        if state == "ready":
            return
        tail = self.output()
        self.stop()
        if state == "exited":
            raise ServiceStartError(f"container {self.name} exited before it was ready:\n{tail}")
        raise ServiceStartError(f"container {self.name} not ready on {self.url} after {self.start_timeout:.0f}s:\n{tail}")

    def _exited(self) -> bool:
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", self.name],
                               capture_output=True, text=True).stdout.strip()
        return state == "false"

    def output(self, lines: int = 40) -> str:
        out = subprocess.run(["docker", "logs", "--tail", str(lines), self.name], capture_output=True, text=True)
        return (out.stdout + out.stderr).strip()

    def stop(self) -> None:
        if not self.started:
            return
        subprocess.run(["docker", "stop", "-t", str(self.stop_timeout), self.name], capture_output=True)
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)
        self.started = False
