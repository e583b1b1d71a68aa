"""The deployment on one Docker host: N service replicas behind nginx (round-robin, each
request to the next replica), one Redis with append-only persistence that they share, one
log folder they all write, and the tracking server (mlflow server on PostgreSQL). Every
image is built here from Debian's packages (deploy/images.sh, `make container`).

    python -m deploy.compose up --dir deployment --replicas 2     # make deploy
    python -m deploy.compose down --dir deployment                # make deploy-down

`up` writes the compose file and the configs into the folder (with Redis's password, mode
0600) and runs `docker-compose up -d`, then waits until every replica, nginx and the tracking
server answer. The engine here has no bridge network (container/engine.sh), so every
container shares the host's network and each replica listens on its own loopback port.
`down` removes every container of the deployment and checks that none is left.
"""
from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

REDIS_IMAGE, NGINX_IMAGE, TRACKING_IMAGE = "botify-redis:bookworm", "botify-nginx:bookworm", "botify-tracking:bookworm"


class DeployError(RuntimeError):
    """The deployment could not be started or stopped; the message names the fix."""


@dataclass
class Deployment:
    dir: Path
    replicas: int = 2
    image: str = "botify:latest"
    port: int = 8080                  # nginx: the service's address
    replica_port: int = 3100          # replica i (1..N) listens on replica_port + i
    redis_port: int = 6380
    tracking_port: int = 5051
    pg_port: int = 5434
    config: str = ""                  # BOTIFY_CONFIG inside the image ("": the image's own)
    project: str = "botify"
    env: dict = field(default_factory=dict)   # more variables for every replica

    def __post_init__(self) -> None:
        self.dir = Path(self.dir).resolve()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def replica_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.replica_port + i}" for i in range(1, self.replicas + 1)]

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.tracking_port}"

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    # ------------------------------------------------------------------ files
    def _secret(self, name: str) -> str:
        path = self.dir / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
        return path.read_text().strip()

    def write(self) -> Path:
        """The compose file and the configs it mounts; the folders the containers write."""
        for sub, mode in (("", 0o755), ("logs", 0o777), ("redis", 0o700), ("tracking", 0o711)):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
            (self.dir / sub).chmod(mode)   # logs: the service's user in the image writes there
        password = self._secret("redis.password")
        redis_conf = self.dir / "redis.conf"
        redis_conf.write_text(f"bind 127.0.0.1\nport {self.redis_port}\nrequirepass {password}\n"
                              "dir /data\nappendonly yes\nappendfsync everysec\nsave \"\"\n")
        redis_conf.chmod(0o600)
        upstream = "\n".join(f"    server {u.removeprefix('http://')};" for u in self.replica_urls)
        (self.dir / "nginx.conf").write_text(
            "worker_processes 1;\npid /tmp/nginx.pid;\nerror_log stderr warn;\nevents { worker_connections 1024; }\n"
            "http {\n  access_log off;\n  upstream botify {\n" + upstream + "\n    keepalive 16;\n  }\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n    location / {{\n      proxy_pass http://botify;\n"
            "      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n"
            "      proxy_set_header Host $host;\n    }\n  }\n}\n")
        env = {"BOTIFY_LOG_DIR": "/logs", "BOTIFY_REDIS_URL": f"redis://:{password}@127.0.0.1:{self.redis_port}/0",
               **({"BOTIFY_CONFIG": self.config} if self.config else {}), **self.env}
        services: dict = {
            "redis": {"image": REDIS_IMAGE, "network_mode": "host", "command": ["/etc/botify/redis.conf"],
                      "volumes": [f"{self.dir / 'redis'}:/data", f"{redis_conf}:/etc/botify/redis.conf:ro"]},
            "tracking": {"image": TRACKING_IMAGE, "network_mode": "host", "stop_grace_period": "60s",
                         "command": ["--port", str(self.tracking_port), "--pg-port", str(self.pg_port)],
                         "volumes": [f"{self.dir / 'tracking'}:/tracking"]},
        }
        for i, url in enumerate(self.replica_urls, 1):
            services[f"botify-{i}"] = {"image": self.image, "network_mode": "host", "depends_on": ["redis"],
                                       "command": ["serve", "--port", url.rsplit(":", 1)[1]], "environment": env,
                                       "volumes": [f"{self.log_dir}:/logs"], "stop_grace_period": "30s"}
        services["nginx"] = {"image": NGINX_IMAGE, "network_mode": "host",
                             "depends_on": [f"botify-{i}" for i in range(1, self.replicas + 1)],
                             "volumes": [f"{self.dir / 'nginx.conf'}:/etc/botify/nginx.conf:ro"]}
        compose = self.dir / "compose.yml"
        compose.write_text(json.dumps({"version": "2.4", "services": services}, indent=1))   # JSON is YAML
        compose.chmod(0o600)   # it holds Redis's password
        (self.dir / "deployment.json").write_text(json.dumps({k: str(v) if isinstance(v, Path) else v
                                                              for k, v in asdict(self).items() if k != "env"}))
        return compose

    # ------------------------------------------------------------------ compose
    def _compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        exe = shutil.which("docker-compose")
        if exe is None:
            raise DeployError("docker-compose is missing: run `make deploy` (apt-get install docker-compose)")
        out = subprocess.run([exe, "-p", self.project, "-f", str(self.dir / "compose.yml"), *args],
                             capture_output=True, text=True)
        if check and out.returncode:
            raise DeployError(f"docker-compose {' '.join(args)} failed:\n{(out.stdout + out.stderr)[-3000:]}")
        return out

    def containers(self, status: str = "") -> list[str]:
        """Names of the deployment's containers, running or not (or only those in `status`)."""
        only = ["--filter", f"status={status}"] if status else []
        out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
                              *only, "--format", "{{.Names}}"], capture_output=True, text=True)
        return out.stdout.split()

    def up(self, timeout: float = 240.0) -> None:
        self.write()
        self._compose("up", "-d", "--no-build")
        deadline = time.monotonic() + timeout
        waiting = [f"{u}/readyz" for u in self.replica_urls] + [f"{self.url}/readyz", f"{self.tracking_uri}/health"]
        exited: list[str] = []
        while waiting and not exited and time.monotonic() < deadline:
            waiting = [u for u in waiting if not _answers(u)]
            exited = self.containers("exited")   # a replica whose start failed never answers
            time.sleep(0.5)
        if waiting or exited:
            logs = self._compose("logs", "--tail", "20", check=False).stdout[-4000:]
            self.down()
            why = f"containers exited: {exited}" if exited else f"not ready within {timeout:.0f}s: {waiting}"
            raise DeployError(f"{why}\n{logs}")

    def down(self) -> list[str]:
        """Stop and remove every container of the deployment; fails if one is left."""
        if (self.dir / "compose.yml").exists():
            self._compose("down", "--timeout", "60")
        left = self.containers()
        if left:
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
            raise DeployError(f"containers left after docker-compose down (now removed): {left}")
        return left


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("--dir", default="deployment", help="the deployment's folder (configs, logs, Redis and tracking data)")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--image", default="botify:latest", help="the service's image (make container)")
    ap.add_argument("--port", type=int, default=8080, help="nginx's port: the service's address")
    ap.add_argument("--config", default="", help="BOTIFY_CONFIG inside the image (default: the image's own)")
    args = ap.parse_args(argv)
    saved = Path(args.dir) / "deployment.json"
    if args.action == "down":
        dep = Deployment(**{k: v for k, v in json.loads(saved.read_text()).items()}) if saved.exists() \
            else Deployment(args.dir)
        try:
            dep.down()
        except DeployError as e:
            print(f"deploy: {e}", file=sys.stderr)
            return 1
        print(f"deployment {dep.project} stopped; checked: no container of it is left")
        return 0
    if args.replicas < 1:
        print("deploy: --replicas must be at least 1", file=sys.stderr)
        return 2
    dep = Deployment(args.dir, replicas=args.replicas, image=args.image, port=args.port, config=args.config)
    try:
        dep.up()
    except DeployError as e:
        print(f"deploy: {e}", file=sys.stderr)
        return 1
    print(f"deployment up: {dep.replicas} replicas of {dep.image} behind nginx at {dep.url} "
          f"(Redis append-only on 127.0.0.1:{dep.redis_port}, logs in {dep.log_dir})")
    print(f"export MLFLOW_TRACKING_URI={dep.tracking_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] if len(sys.argv) > 1 else None))
