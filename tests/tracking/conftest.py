"""`tracking_server`: a real MLflow tracking server on a real PostgreSQL (Debian's package,
installed by `make postgresql`), started once per test session in a temp folder and stopped,
with everything it started, when the session ends, whatever failed. Yields its URI.

The folder is made under the system temp folder, not pytest's (mode 0700): as root,
PostgreSQL runs as the `postgres` user, which must be able to reach its data folder.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from deploy.tracking_server import TrackingServer, TrackingServerError, pg_bin
from service.launch import free_port


@pytest.fixture(scope="session")
def tracking_server_handle():
    """The running TrackingServer itself (its folder, ports, `stop()`)."""
    try:
        pg_bin("initdb")
    except TrackingServerError as e:
        pytest.fail(str(e))
    folder = Path(tempfile.mkdtemp(prefix="botify-tracking-"))
    folder.chmod(0o711)
    server = TrackingServer(folder, port=free_port(), pg_port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tracking_server(tracking_server_handle: TrackingServer) -> str:
    """`http://127.0.0.1:PORT` of the session's tracking server (MLFLOW_TRACKING_URI)."""
    return tracking_server_handle.uri
