"""The tracking server of `make tracking-server` (deploy/tracking_server.py): PostgreSQL on the
loopback with a password nobody sees, `mlflow server` on it serving the artifacts, and a stop
that leaves nothing running while a restart finds every run again."""
from __future__ import annotations

import shutil
import socket
import stat
import tempfile
from pathlib import Path

import mlflow
import psutil
import psycopg2
import pytest
from mlflow import MlflowClient

from deploy.tracking_server import DATABASE, ROLE, TrackingServer
from service.launch import free_port


def _connect(server: TrackingServer, password: str):
    return psycopg2.connect(host="127.0.0.1", port=server.pg_port, user=ROLE, password=password,
                            dbname=DATABASE, connect_timeout=5)


def test_postgres_listens_on_the_loopback_only_and_wants_the_password(tracking_server_handle):
    server = tracking_server_handle
    assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
    conn = _connect(server, server.password_file.read_text().strip())
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW listen_addresses")
            assert cur.fetchone()[0] == "127.0.0.1"
            cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'experiments'")
            assert cur.fetchone()[0] == 1          # MLflow's schema lives in PostgreSQL
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        _connect(server, "not-the-password")


def test_the_password_is_in_no_log_and_no_command_line(tracking_server, tracking_server_handle):
    server = tracking_server_handle
    password = server.password_file.read_text().strip()
    MlflowClient(tracking_server).search_experiments()      # the server has talked to PostgreSQL
    logs = [server.dir / "mlflow.log", server.data / "server.log", server.state_file]
    for log in logs:
        assert log.exists() and password not in log.read_text(errors="replace"), log
    for proc in psutil.process_iter(["cmdline"]):
        assert password not in " ".join(proc.info["cmdline"] or []), proc.info["cmdline"]


def _ours(folder: Path) -> list[str]:
    """Command lines of the processes that belong to the server in `folder`."""
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(folder) in cmd:
            out.append(cmd)
    return out


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_stop_leaves_nothing_running_and_a_restart_keeps_runs_and_artifacts(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="botify-tracking-restart-"))
    folder.chmod(0o711)
    server = TrackingServer(folder, port=free_port(), pg_port=free_port())
    try:
        server.start()
        assert server.start() is None           # a second start finds it running and starts nothing
        client = MlflowClient(server.uri)
        exp = client.create_experiment("restart")
        run = client.create_run(exp)
        (tmp_path / "note.txt").write_text("kept")
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
        client.set_terminated(run.info.run_id)
        # artifacts go through the server into its folder, not into a local mlruns/
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        assert list((folder / "artifacts").rglob("note.txt"))

        stopped = server.stop()
        assert len(stopped) == 2 and stopped[0].startswith("mlflow server") and stopped[1] == "PostgreSQL"
        assert _ours(folder) == []
        assert not _listening(server.port) and not _listening(server.pg_port)

        server.start()
        client = MlflowClient(server.uri)
        assert client.get_run(run.info.run_id).info.status == "FINISHED"
        got = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="note.txt",
                                                  tracking_uri=server.uri, dst_path=str(tmp_path / "dl"))
        assert Path(got).read_text() == "kept"
    finally:
        server.stop()
        assert _ours(folder) == []
        shutil.rmtree(folder, ignore_errors=True)
