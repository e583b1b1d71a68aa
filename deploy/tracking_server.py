"""An MLflow tracking server on PostgreSQL, all in one folder: what `make tracking-server`
starts on this machine, what the deployment's tracking container runs, and what the tests
start in a temp folder.

    python -m deploy.tracking_server start --dir tracking [--port 5050] [--pg-port 5433]
    python -m deploy.tracking_server stop --dir tracking
    python -m deploy.tracking_server status --dir tracking
    python -m deploy.tracking_server run --dir /tracking ...   # in the foreground (a container)

The folder holds PostgreSQL's data (`postgres/`, Debian's package; listening on the loopback
only, password authentication), the password of its role (`password`, mode 0600, generated on
the first start and never printed), the artifacts the server serves (`artifacts/`) and both
servers' logs. PostgreSQL refuses to run as root: as root it runs as the package's
`postgres` user, which must be able to reach the folder. `mlflow server` gets its store URI
(with the password) through its environment, never its command line, which `ps` shows.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROLE = "botify"
DATABASE = "mlflow"
DEFAULT_PORT = 5050
DEFAULT_PG_PORT = 5433


class TrackingServerError(RuntimeError):
    """The tracking server could not be started or stopped; the message names the fix."""


def pg_bin(name: str) -> str:
    """A PostgreSQL program: Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    exe = found[-1] if found else shutil.which(name)
    if not exe:
        raise TrackingServerError(f"PostgreSQL's {name} is missing: run `make postgresql` "
                                  "(apt-get install postgresql)")
    return exe


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL's own programs refuse root: run them as the package's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _give_to_postgres(*paths: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for p in paths:
            os.chown(p, user.pw_uid, user.pw_gid)


class TrackingServer:
    """The folder's servers: `start()` (idempotent), `stop()`, `uri`."""

    def __init__(self, folder: str | Path, port: int = DEFAULT_PORT, pg_port: int = DEFAULT_PG_PORT,
                 host: str = "127.0.0.1", workers: int = 2) -> None:
        self.dir = Path(folder).resolve()
        self.port, self.pg_port, self.host, self.workers = port, pg_port, host, workers
        self.data = self.dir / "postgres"
        self.password_file = self.dir / "password"
        self.pid_file = self.dir / "mlflow.pid"
        self.state_file = self.dir / "server.json"   # ports of the running servers (no secret)
        self.proc: subprocess.Popen | None = None      # the mlflow server, when this object started it

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ----------------------------------------------------------------- PostgreSQL
    def _password(self) -> str:
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.password_file.chmod(0o600)
        _give_to_postgres(self.password_file)
        return self.password_file.read_text().strip()

    def _init_postgres(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.data.mkdir(mode=0o700, parents=True, exist_ok=True)
        _give_to_postgres(self.data)
        if os.geteuid() == 0 and subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.data)]).returncode:
            raise TrackingServerError(f"the postgres user cannot write {self.data}: let it reach the folder "
                                      f"(chmod o+x on {self.dir} and its parents) or pick another TRACKING_DIR")
        self._password()
        out = subprocess.run(_as_postgres([pg_bin("initdb"), "-D", str(self.data), "-U", ROLE, "-E", "UTF8",
                                           "--locale=C", "--auth=scram-sha-256", f"--pwfile={self.password_file}"]),
                             capture_output=True, text=True)
        if out.returncode:
            raise TrackingServerError(f"initdb failed:\n{out.stderr[-2000:]}")

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(_as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), *args]),
                              capture_output=True, text=True)

    def postgres_running(self) -> bool:
        return self.data.exists() and self._pg_ctl("status").returncode == 0

    def _start_postgres(self) -> None:
        if self.postgres_running():
            return
        # TCP on the loopback only, no Unix socket (its folder may not exist, its path may be too long)
        opts = f"-p {self.pg_port} -c listen_addresses={self.host} -c unix_socket_directories=''"
        out = self._pg_ctl("-l", str(self.data / "server.log"), "-w", "-t", "60", "-o", opts, "start")
        if out.returncode:
            log = (self.data / "server.log").read_text()[-2000:] if (self.data / "server.log").exists() else ""
            raise TrackingServerError(f"PostgreSQL did not start on {self.host}:{self.pg_port}:\n{out.stderr}{log}")
        import psycopg2
        conn = psycopg2.connect(host=self.host, port=self.pg_port, user=ROLE, password=self._password(),
                                dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            conn.close()

    def store_uri(self) -> str:
        return f"postgresql+psycopg2://{ROLE}:{self._password()}@{self.host}:{self.pg_port}/{DATABASE}"

    def lock_uri(self) -> str:
        """The promotion lock's database (BOTIFY_PROMOTION_LOCK, training/registry/lock.py): this
        PostgreSQL, its password read by libpq from `pgpass` (mode 0600), so the URI may be printed."""
        passfile = self.dir / "pgpass"
        passfile.touch(mode=0o600)
        passfile.chmod(0o600)   # libpq refuses a passfile others can read
        passfile.write_text(f"{self.host}:{self.pg_port}:{DATABASE}:{ROLE}:{self._password()}\n")
        return f"postgresql://{ROLE}@{self.host}:{self.pg_port}/{DATABASE}?passfile={passfile}"

    # ----------------------------------------------------------------- mlflow server
    def _mlflow_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def _spawn_mlflow(self) -> subprocess.Popen:
        (self.dir / "artifacts").mkdir(exist_ok=True)
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        cmd = [mlflow, "server", "--host", self.host, "--port", str(self.port), "--workers", str(self.workers),
               "--serve-artifacts", "--artifacts-destination", str(self.dir / "artifacts")]
        env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": self.store_uri()}
        env.pop("MLFLOW_TRACKING_URI", None)
        log = open(self.dir / "mlflow.log", "ab")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.dir)
        log.close()
        self.pid_file.write_text(f"{proc.pid}\n")
        self.proc = proc
        return proc

    def _wait_healthy(self, proc: subprocess.Popen | None, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        tail = (self.dir / "mlflow.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise TrackingServerError(f"mlflow server did not answer on {self.uri} within {timeout:.0f}s "
                                  f"(port taken? pick another with TRACKING_PORT); its log:\n{tail}")

    # ----------------------------------------------------------------- both
    def start(self) -> subprocess.Popen | None:
        """Start what is not running yet; the mlflow server's process when this call started it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.state_file.exists() and self._mlflow_pid():
            saved = json.loads(self.state_file.read_text())
            self.port, self.pg_port = saved["port"], saved["pg_port"]
        self._init_postgres()
        self._start_postgres()
        proc = None
        if self._mlflow_pid() is None:
            proc = self._spawn_mlflow()
        self._wait_healthy(proc)
        self.state_file.write_text(json.dumps({"uri": self.uri, "port": self.port, "pg_port": self.pg_port}))
        return proc

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop the mlflow server (its whole process group) and PostgreSQL; what was stopped."""
        stopped = []
        pid = self._mlflow_pid()
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _group_alive(pid):
                if self.proc is not None:
                    self.proc.poll()   # reap our own child, else it stays a zombie of its group
                time.sleep(0.2)
            if _group_alive(pid):
                os.killpg(pid, signal.SIGKILL)
            if self.proc is not None:
                self.proc.wait()
                self.proc = None
            stopped.append(f"mlflow server (pid {pid})")
        self.pid_file.unlink(missing_ok=True)
        if self.postgres_running():
            out = self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop")
            if out.returncode:
                raise TrackingServerError(f"PostgreSQL did not stop: {out.stderr}")
            stopped.append("PostgreSQL")
        self.state_file.unlink(missing_ok=True)
        return stopped


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["start", "stop", "status", "run"])
    ap.add_argument("--dir", default="tracking", help="the folder of the data, artifacts, password and logs")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help="mlflow server's port")
    ap.add_argument("--pg-port", type=int, default=DEFAULT_PG_PORT, help="PostgreSQL's port (loopback)")
    ap.add_argument("--host", default="127.0.0.1", help="the address both listen on")
    ap.add_argument("--workers", type=int, default=2, help="mlflow server's worker processes")
    args = ap.parse_args(argv)
    server = TrackingServer(args.dir, args.port, args.pg_port, args.host, args.workers)
    try:
        if args.action == "stop":
            stopped = server.stop()
            print(f"tracking server in {server.dir}: " + (f"stopped {', '.join(stopped)}" if stopped
                                                            else "nothing was running"))
            return 0
        if args.action == "status":
            up = server._mlflow_pid() is not None and server.postgres_running()
            print(f"tracking server in {server.dir}: " + (json.loads(server.state_file.read_text())["uri"]
                                                          if up else "not running"))
            return 0 if up else 3
        proc = server.start()
        print(f"tracking server in {server.dir} (PostgreSQL on {server.host}:{server.pg_port}, "
              f"artifacts in {server.dir / 'artifacts'}, logs: mlflow.log, postgres/server.log)")
        print(f"export MLFLOW_TRACKING_URI={server.uri}")
        print(f"export BOTIFY_PROMOTION_LOCK={server.lock_uri()}", flush=True)   # promotions from every machine
        if args.action == "run":   # the foreground: a container's main process
            stopping: list[int] = []
            signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
            while not stopping and proc is not None and proc.poll() is None:
                time.sleep(0.5)
            code = proc.returncode if proc is not None and not stopping else 0
            server.stop()
            return code or 0
        return 0
    except TrackingServerError as e:
        print(f"tracking server: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
