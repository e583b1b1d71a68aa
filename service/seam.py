"""Where the service leans on BentoML and prometheus_client beyond their public API, and why.

Every such use is here and nowhere else (tests/service/test_service_seam.py checks it), and
each is load-bearing:
- `set_metrics_dir` (`BentoMLContainer.prometheus_multiproc_dir`): BentoML empties one shared
  metrics folder per BENTOML_HOME at every start, so a second service wiped the first's
  metrics; each server gets a folder of its own.
- `swagger_page` (`_bentoml_impl.server`'s page, `BentoMLContainer.new_index`): BentoML's
  Swagger UI would sit at `/`, the course's status route; it is served at `/docs`.
- `observe_many` (a histogram child's `_sum`, `_buckets`): a second's latencies written with
  one locked write per bucket, not per request; per-value writes were the request path's
  largest metrics cost.
- BentoML's process model, which its docs do not promise: the server process imports the
  service module, with `server_context.worker_index` None, before it starts any worker.
  `on_import` uses that import to make the server's own folder (metrics, start-up failure)
  and to have each worker die with its server, which starts workers in sessions of their
  own: a SIGKILLed server left them serving on the port, unseen. `stop_server`: a worker that
  cannot start stops its server, which BentoML would otherwise restart every 10 s forever
  and then end with status 0; the server exits 1 with the worker's reason.
They hold for the versions in `SUPPORTED`, checked on import: another version stops the
service at start with the fix, rather than breaking one of the above silently.
"""
from __future__ import annotations

import atexit
import bisect
import collections
import functools
import importlib.metadata
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from service.procs import die_with_parent

# distribution -> the versions the uses above are tested with
SUPPORTED = {"bentoml": ("1.4.40",), "prometheus-client": ("0.26.0",)}
INSTANCE_ENV = "BOTIFY_INSTANCE_DIR"
ARBITER_ENV = "BOTIFY_ARBITER_PID"
STARTUP_ERROR = "startup-error"
EXIT_STARTUP_FAILED = 1
_made: Path | None = None


class UnsupportedVersion(RuntimeError):
    """An installed BentoML or prometheus_client this module was not tested with."""


def installed_version(distribution: str) -> str | None:
    """The version of the `distribution` Python imports, from the dist-info beside its package;
    `importlib.metadata.version` alone indexes every folder on sys.path first, a cost to every
    process's start."""
    package = distribution.replace("-", "_")
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.origin:
        found = list(Path(spec.origin).parents[1].glob(f"{package}-*.dist-info"))
        if len(found) == 1:
            return importlib.metadata.Distribution.at(found[0]).version
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_versions(installed: Callable[[str], str | None] = installed_version) -> None:
    """Raise UnsupportedVersion naming the version, the supported ones and the fix."""
    for dist, versions in SUPPORTED.items():
        got = installed(dist)
        if got not in versions:
            raise UnsupportedVersion(
                f"Botify's service relies on internals of {dist} (service/seam.py) tested with "
                f"{dist} {' or '.join(versions)}; installed: {got or 'none'}. Fix: pip install "
                f"{dist}=={versions[-1]} (requirements.txt pins it), or test service/seam.py's uses "
                f"with {dist} {got} and add it to seam.SUPPORTED.")


check_versions()


# --- BentoML's internals ---------------------------------------------------------------
def set_metrics_dir(path: Path) -> None:
    """Where this server's workers keep Prometheus's multiprocess files."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.prometheus_multiproc_dir.set(str(path))


def swagger_page() -> Path:
    """BentoML's Swagger UI page (the one its own index route serves)."""
    import _bentoml_impl.server as impl
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(impl.__file__).parent / ("main-ui.html" if BentoMLContainer.new_index else "main-openapi.html")


# --- prometheus_client's internals -----------------------------------------------------
def observe_many(child: object, seconds: Sequence[float], bounds: Sequence[float]) -> None:
    """What `child.observe(x)` does for each x of `seconds`, one write per bucket touched;
    `bounds` are the histogram's upper bounds, +Inf last."""
    child._sum.inc(sum(seconds))
    for bucket, n in collections.Counter(map(functools.partial(bisect.bisect_left, bounds), seconds)).items():
        child._buckets[bucket].inc(n)


# --- BentoML's process model -----------------------------------------------------------
def on_import() -> None:
    """Run where service.service is imported: BentoML's server process (before any worker)
    and each worker."""
    from bentoml import server_context

    _server_folder()
    if server_context.worker_index is None:  # the server (or any other importer)
        os.environ[ARBITER_ENV] = str(os.getpid())
        return
    die_with_parent(signal.SIGTERM)
    arbiter = os.environ.get(ARBITER_ENV, "")
    # the server died before the request took effect: nothing would signal this worker
    if arbiter.isdigit() and int(arbiter) != os.getppid() and not os.path.exists(f"/proc/{arbiter}"):
        raise SystemExit(f"Botify worker {os.getpid()}: its server (pid {arbiter}) is gone")


def stop_server(reason: str) -> None:
    """In a worker that cannot start: leave the reason for the server and stop it."""
    folder = os.environ.get(INSTANCE_ENV)
    if folder:
        try:
            (Path(folder) / STARTUP_ERROR).write_text(reason)
        except OSError:
            pass
    os.kill(os.getppid(), signal.SIGTERM)


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


def _server_folder() -> Path | None:
    """In the server process: make its folder (metrics, start-up failure), removed at its
    exit, and remove those of servers that were killed. In a worker, or made already: None."""
    global _made
    from bentoml import server_context

    worker = server_context.worker_index is not None or (
        INSTANCE_ENV in os.environ and "PROMETHEUS_MULTIPROC_DIR" in os.environ)  # both set by its server
    if _made is not None or worker:
        return None
    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*"):
        pid = old.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    (path / "prometheus").mkdir()
    set_metrics_dir(path / "prometheus")
    os.environ[INSTANCE_ENV] = str(path)
    atexit.register(_at_exit, path, os.getpid())
    _made = path
    return path


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
