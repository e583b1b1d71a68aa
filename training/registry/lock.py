"""The promotion lock: one promotion at a time among every job that promotes in one registry,
on this machine or any other.

Where it lives follows from where the registry lives:
* `BOTIFY_PROMOTION_LOCK=postgresql://USER[:PASSWORD]@HOST:PORT/DB` (any libpq URI: `?passfile=`,
  `PGPASSWORD` work too): a PostgreSQL advisory lock, held by this job's database session. The
  server releases it when the session ends, however the job dies, and every machine that can
  reach the database takes the same one: the tracking server's own PostgreSQL is the natural
  place (`make tracking-server`).
* unset, a `postgresql://` tracking store: that database, as above.
* unset, a local store (`sqlite:///`, a folder): an `flock` on `promotion.lock` beside it; the
  kernel drops it when its holder exits. Only jobs on this machine can share that store.
* unset, any other store (an `http://` tracking server, ...): no lock every promoting machine
  can reach, so `promotion_lock` refuses with the fix rather than promote unsafely.
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from training.errors import JobError
from training.registry.tracking import safe_uri

LOCK_ENV = "BOTIFY_PROMOTION_LOCK"
LOCK_FILE = "promotion.lock"
POSTGRES = ("postgresql://", "postgres://", "postgresql+")
# the first key of our advisory locks ("botf"): other users of the database pick other numbers
ADVISORY_CLASS = 0x626F7466


class LockError(JobError):
    """No lock can be taken: none configured for a shared store, or it cannot be reached."""


@dataclass(frozen=True)
class Location:
    kind: str        # "file" | "postgresql"
    where: str       # the lock file's path, or the database's URI


def locate(tracking_uri: str, env: dict | None = None) -> Location:
    """Where the promotion lock of a registry at `tracking_uri` lives (see the module's docstring)."""
    env = os.environ if env is None else env
    configured = (env.get(LOCK_ENV) or "").strip()
    if configured:
        if configured.startswith(POSTGRES):
            return Location("postgresql", configured)
        raise LockError(f"{LOCK_ENV}={safe_uri(configured)!r} is not a PostgreSQL URI "
                        f"(postgresql://USER@HOST:PORT/DB): the promotion lock is a PostgreSQL advisory lock")
    if tracking_uri.startswith(POSTGRES):
        return Location("postgresql", tracking_uri)
    if tracking_uri.startswith("sqlite:///"):
        return Location("file", str(Path(tracking_uri[len("sqlite:///"):]).parent / LOCK_FILE))
    if tracking_uri.startswith("file://"):
        return Location("file", str(Path(tracking_uri[len("file://"):]) / LOCK_FILE))
    if "://" not in tracking_uri:
        return Location("file", str(Path(tracking_uri) / LOCK_FILE))
    raise LockError(f"not promoted: the registry at {tracking_uri} is shared, and no promotion lock that every "
                    f"machine promoting there can reach is configured; set {LOCK_ENV}=postgresql://USER@HOST:PORT/DB "
                    f"(the tracking server's PostgreSQL, e.g. `make tracking-server`'s) and run again")


@contextmanager
def promotion_lock(name: str, tracking_uri: str | None = None, timeout: float = 600.0,
                   say: Callable[[str], None] = lambda m: print(m, flush=True)) -> Iterator[Callable[[], None]]:
    """Hold the promotion lock of registered model `name` for the block; waits up to `timeout`
    seconds for another holder. Yields `still_held()`, which raises LockError if the lock was
    lost meanwhile (the database session dropped): a caller checks it right before its last act."""
    import mlflow
    where = locate(tracking_uri or mlflow.get_tracking_uri())
    hold = _advisory_lock if where.kind == "postgresql" else _file_lock
    with hold(where.where, name, timeout, say) as still_held:
        yield still_held


def require_lock(tracking_uri: str | None = None) -> Location:
    """A job's first act: fail now, not after hours of work, if its promotion could not be locked."""
    import mlflow
    where = locate(tracking_uri or mlflow.get_tracking_uri())
    if where.kind == "postgresql":
        _connect(where.where).close()
    return where


# --------------------------------------------------------------------------- a local store

@contextmanager
def _file_lock(path: str, name: str, timeout: float, say: Callable[[str], None]) -> Iterator[Callable[[], None]]:
    """An exclusive `flock`: the kernel drops it when the holder exits, however it dies."""
    path_ = Path(path)
    path_.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path_, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, said = time.monotonic() + timeout, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                if time.monotonic() > deadline:
                    raise LockError(f"not promoted: another run (pid {holder}) held the promotion lock {path_} "
                                    f"for over {timeout:.0f}s; if it is stuck, stop it, then run again") from None
                if not said:
                    say(f"[promotion] waiting for another run's promotion (pid {holder}, lock {path_})")
                    said = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lambda: None   # held until this process closes the file: it cannot be lost
    finally:
        os.close(fd)   # releases the lock


# --------------------------------------------------------------------------- a shared store

def advisory_key(name: str) -> tuple[int, int]:
    """The two int4 keys of `name`'s lock: our class, then the name's CRC (non-negative, so
    pg_locks' unsigned `objid` shows the same number)."""
    return ADVISORY_CLASS, zlib.crc32(name.encode()) & 0x7FFFFFFF


def _libpq_uri(uri: str) -> str:
    """SQLAlchemy's `postgresql+psycopg2://` as the plain URI libpq reads."""
    scheme, rest = uri.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgresql") or scheme == "postgres" else uri


def _connect(uri: str):
    import psycopg2
    me = f"botify-promotion {socket.gethostname()} pid {os.getpid()}"[:63]
    try:
        conn = psycopg2.connect(_libpq_uri(uri), connect_timeout=10, application_name=me,
                                keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
    except psycopg2.Error as e:
        raise LockError(f"not promoted: the promotion lock's database {safe_uri(uri)} cannot be reached "
                        f"({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}); "
                        f"check {LOCK_ENV} (or the tracking URI) and that PostgreSQL is up") from None
    conn.autocommit = True   # a session-level lock: no transaction holds it open
    return conn


@contextmanager
def _advisory_lock(uri: str, name: str, timeout: float, say: Callable[[str], None]) -> Iterator[Callable[[], None]]:
    """`pg_try_advisory_lock` on this job's own session, polled until `timeout`; released by
    `pg_advisory_unlock`, or by the server when the session ends (the job died, its host or
    network went away: TCP keepalives end a silent session within about half a minute)."""
    import psycopg2
    key = advisory_key(name)
    conn = _connect(uri)
    try:
        deadline, said = time.monotonic() + timeout, False
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
                if cur.fetchone()[0]:
                    break
                if time.monotonic() > deadline:
                    raise LockError(f"not promoted: {_holder(cur, key)} held the promotion lock of `{name}` "
                                    f"({safe_uri(uri)}) for over {timeout:.0f}s; if it is stuck, stop it, then run again")
                if not said:
                    say(f"[promotion] waiting for another run's promotion ({_holder(cur, key)}, "
                        f"lock of `{name}` in {safe_uri(uri)})")
                    said = True
                time.sleep(0.2)

        def still_held() -> None:
            """The lock is ours only while our session lives and holds it."""
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                "AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 2", key)
                    held = cur.fetchone()[0] == 1
            except psycopg2.Error:
                held = False
            if not held:
                raise LockError(f"not promoted: the promotion lock of `{name}` was lost (its database session "
                                f"to {safe_uri(uri)} ended), so another run may be promoting; run again")
        yield still_held
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        except psycopg2.Error:
            pass   # the session is gone: the server released the lock with it
    finally:
        conn.close()


def _holder(cur, key: tuple[int, int]) -> str:
    cur.execute("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
                "AND l.objsubid = 2", key)
    row = cur.fetchone()
    return f"another run ({row[0] or 'unnamed session'})" if row else "another run"
