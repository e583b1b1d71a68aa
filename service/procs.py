"""The processes a job starts: find them, stop them, prove none is left.

Why this exists: a process tree is not a reliable handle on what a job started.
BentoML's arbiter puts each worker in its own session, so a `killpg` of the arbiter's
group misses the workers, and a worker whose arbiter died is re-parented to init, out of
reach of any walk down from the job. Two things survive re-parenting and new sessions:

- an environment variable: every process inherits its parent's environment, so a marker
  (`BOTIFY_JOB`, `BOTIFY_SERVICE`, set to a fresh id) names everything a job or a service
  started, wherever it ended up; `/proc/PID/environ` shows the environment a process was
  started with;
- `PR_SET_PDEATHSIG`: a process asks the kernel for a signal when its parent dies, so it
  cannot outlive the one that started it even if that one is SIGKILLed (nothing runs then).

Linux only (procfs, prctl); elsewhere the functions find nothing and `die_with_parent`
returns False, and stopping falls back to the process group.
"""
from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
JOB_ENV = "BOTIFY_JOB"            # set by an entry point for everything it starts
SERVICE_ENV = "BOTIFY_SERVICE"    # set by ServiceProcess for the arbiter and its workers
PR_SET_PDEATHSIG = 1

try:  # resolved once, so a fork's child (preexec_fn) only makes the call
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


@dataclass(frozen=True)
class Proc:
    """A process as /proc saw it; (pid, start) names it even after its pid is reused."""

    pid: int
    ppid: int
    start: int      # clock ticks after boot (field 22 of /proc/PID/stat)
    state: str
    cmd: str

    def __str__(self) -> str:
        return f"pid {self.pid} (parent {self.ppid}): {self.cmd[:160]}"


def _stat(pid: int) -> Proc | None:
    try:
        raw = (PROC / str(pid) / "stat").read_bytes().decode(errors="replace")
        cmd = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    # "pid (comm) state ppid ..."; comm may hold spaces and parentheses: split at the last ')'
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    if len(fields) < 20:
        return None
    comm = head.partition("(")[2]
    return Proc(pid, int(fields[1]), int(fields[19]), fields[0], cmd or f"[{comm}]")


def processes() -> list[Proc]:
    """Every process this user can see, zombies excluded (they are dead; their parent reaps them)."""
    out = []
    for d in PROC.glob("[0-9]*"):
        p = _stat(int(d.name))
        if p is not None and p.state not in ("Z", "X"):
            out.append(p)
    return out


def alive(p: Proc) -> bool:
    """Still running (not a zombie) and still the same process, not a reuse of its pid."""
    now = _stat(p.pid)
    return now is not None and now.start == p.start and now.state not in ("Z", "X")


def descendants(pid: int, procs: list[Proc] | None = None) -> list[Proc]:
    """Children, grandchildren, ... of `pid` as the ppid links stand now."""
    procs = processes() if procs is None else procs
    children: dict[int, list[Proc]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c.pid)
    return out


def marked(key: str, value: str, procs: list[Proc] | None = None) -> list[Proc]:
    """The processes started with `key=value` in their environment (this one excluded)."""
    needle = f"{key}={value}".encode()
    me = os.getpid()
    out = []
    for p in processes() if procs is None else procs:
        if p.pid == me:
            continue
        try:
            env = (PROC / str(p.pid) / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            out.append(p)
    return out


def new_marker(key: str) -> str:
    """Set `key` to a fresh id in this process's environment (children inherit it); returns it."""
    value = uuid.uuid4().hex
    os.environ[key] = value
    return value


def stop(procs: list[Proc], timeout: float = 3.0) -> list[Proc]:
    """SIGTERM each, SIGKILL whatever still runs after `timeout`; returns what survived even that."""
    procs = [p for p in procs if alive(p)]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        for p in procs:
            if alive(p):
                try:
                    os.kill(p.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            procs = [p for p in procs if alive(p)]
            if not procs:
                return []
            time.sleep(0.05)
    return [p for p in procs if alive(p)]


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (PR_SET_PDEATHSIG).

    The signal follows the parent *thread* that forked us, so a launcher should start us
    from its main thread (`child_preexec` checks). False where prctl is unavailable.
    """
    if _prctl is None:
        return False
    return _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _pdeathsig_term() -> None:  # runs in the forked child, before exec: one C call, nothing else
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def child_preexec():
    """`preexec_fn` for a subprocess that must not outlive this process: it gets SIGTERM
    when we die, however we die. None off the main thread: there the signal would come
    when that thread ends, not when the process does."""
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    return _pdeathsig_term
