"""What one `bentoml serve` of Botify keeps to itself: a private folder for its workers'
Prometheus multiprocess files, and the exit status when a worker cannot start.

Metrics: BentoML puts every server's multiprocess files in one folder under BENTOML_HOME
and empties it when a server starts, so a second service on the machine wiped the first's
metrics. Each server (the process that imports this module first, before any worker)
gets its own folder instead, passed to its workers in the environment and removed when it
exits; folders of servers that died without cleaning up are removed by the next start.

Exit status: a worker that cannot start (bad config, missing artifact, unwritable log
folder) stops the server, which BentoML then ends with status 0, as if asked to stop. The
worker writes its reason into the folder; the server, exiting, prints it and exits 1.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

INSTANCE_ENV = "BOTIFY_INSTANCE_DIR"
STARTUP_ERROR = "startup-error"
EXIT_STARTUP_FAILED = 1
_made: Path | None = None


def _root() -> Path:
    return Path(tempfile.gettempdir()) / f"botify-instances-{os.getuid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def setup() -> Path | None:
    """In the server process (not yet a worker): make the instance folder, point BentoML's
    metrics there, arrange the exit status. In a worker, or when set up already: nothing."""
    global _made
    from bentoml import server_context
    from bentoml._internal.configuration.containers import BentoMLContainer

    worker = server_context.worker_index is not None or (
        INSTANCE_ENV in os.environ and "PROMETHEUS_MULTIPROC_DIR" in os.environ)  # both set by its server
    if _made is not None or worker:
        return None

    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*"):  # left by servers that were killed
        pid = old.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    (path / "prometheus").mkdir()
    BentoMLContainer.prometheus_multiproc_dir.set(str(path / "prometheus"))
    os.environ[INSTANCE_ENV] = str(path)
    atexit.register(_at_exit, path, os.getpid())
    _made = path
    return path


def report_startup_failure(message: str) -> None:
    """In a worker: leave the reason for the server, which exits non-zero with it."""
    folder = os.environ.get(INSTANCE_ENV)
    if folder:
        try:
            (Path(folder) / STARTUP_ERROR).write_text(message)
        except OSError:
            pass


def _at_exit(path: Path, pid: int) -> None:
    if os.getpid() != pid:  # a forked child inherits atexit handlers
        return
    error = path / STARTUP_ERROR
    message = error.read_text() if error.is_file() else None
    shutil.rmtree(path, ignore_errors=True)
    if message is not None:
        sys.stderr.write(f"Botify did not start: {message}\n")
        sys.stderr.flush()
        os._exit(EXIT_STARTUP_FAILED)  # atexit cannot change the status any other way
