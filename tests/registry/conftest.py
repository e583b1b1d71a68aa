"""A real PostgreSQL (Debian's package) and an `mlflow server` on it with artifact serving,
started once per test session in a temp folder and stopped, whatever failed: the shared
registry two machines promote into, and the lock they share (the database's advisory lock).

Minimal on purpose: deploy/tracking_server.py (`make tracking-server`) is the project's own
tracking server; these fixtures only need one to exist.
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from service.launch import free_port


def _pg(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"PostgreSQL's {name} is missing: apt-get install postgresql (make postgresql)")
    return found[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the package's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres():
    """`postgresql://botify:PASSWORD@127.0.0.1:PORT/mlflow` of a fresh cluster (loopback, TCP only)."""
    import psycopg2
    folder = Path(tempfile.mkdtemp(prefix="botify-pg-"))   # not pytest's: the postgres user must reach it
    folder.chmod(0o711)
    data, pwfile = folder / "data", folder / "pw"
    password, port = secrets.token_urlsafe(16), free_port()
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for p in (folder, pwfile):
            os.chown(p, user.pw_uid, user.pw_gid)
    try:
        subprocess.run(_as_postgres([_pg("initdb"), "-D", str(data), "-U", "botify", "--auth=scram-sha-256",
                                     f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"]), check=True,
                       capture_output=True)
        subprocess.run(_as_postgres([_pg("pg_ctl"), "-D", str(data), "-l", str(folder / "pg.log"), "-w", "-o",
                                     f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
                                     "start"]), check=True, capture_output=True)
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="botify", password=password, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        yield f"postgresql://botify:{password}@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(_as_postgres([_pg("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tracking_server(postgres, tmp_path_factory):
    """`http://127.0.0.1:PORT` of an `mlflow server` whose store is `postgres`."""
    folder = tmp_path_factory.mktemp("tracking")
    port = free_port()
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": postgres.replace("postgresql://", "postgresql+psycopg2://", 1)}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(folder / "mlflow.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "2", "--serve-artifacts",
                             "--artifacts-destination", str(folder / "artifacts")],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail(f"mlflow server did not start:\n{(folder / 'mlflow.log').read_text()[-3000:]}")
        yield uri
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()
