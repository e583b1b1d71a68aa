"""`service.procs`: finding a job's processes wherever they were re-parented, stopping
them, and the kernel's parent-death signal that keeps a child from outliving its starter."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from service import procs

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not procs.PROC.is_dir(), reason="needs Linux /proc")


def _wait_gone(ps: list[procs.Proc], seconds: float = 10.0) -> list[procs.Proc]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(procs.alive(p) for p in ps):
        time.sleep(0.05)
    return [p for p in ps if procs.alive(p)]


def _python(code: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **(env or {})}, **kw)


def test_marked_finds_a_grandchild_that_left_our_tree_and_its_session():
    """A daemonised grandchild (new session, parent gone: re-parented away from us) is no
    descendant of ours any more, but it still carries the marker it was started with."""
    mark = uuid.uuid4().hex
    code = ("import os, subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
            "print(p.pid, flush=True)\n")
    parent = _python(code, {"LC_TEST_MARK": mark}, stdout=subprocess.PIPE, text=True)
    grandchild = int(parent.stdout.readline())
    parent.wait(timeout=10)
    try:
        found = procs.marked("LC_TEST_MARK", mark)
        assert [p.pid for p in found] == [grandchild]
        assert grandchild not in {p.pid for p in procs.descendants(os.getpid())}
        assert procs.stop(found, timeout=2) == []
        assert procs.marked("LC_TEST_MARK", mark) == []
    finally:
        try:
            os.kill(grandchild, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_stop_kills_what_ignores_sigterm():
    mark = uuid.uuid4().hex
    child = _python("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ok', flush=True)\n"
                    "time.sleep(60)", {"LC_TEST_MARK": mark}, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ok"
    (p,) = procs.marked("LC_TEST_MARK", mark)
    assert procs.descendants(os.getpid()) and p.pid in {d.pid for d in procs.descendants(os.getpid())}
    t0 = time.monotonic()
    assert procs.stop([p], timeout=0.5) == []
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - t0 < 5
    assert not procs.alive(p)


def test_a_reused_pid_is_not_the_same_process():
    child = _python("pass")
    child.wait()
    ghost = procs.Proc(pid=child.pid, ppid=os.getpid(), start=0, state="S", cmd="gone")
    assert not procs.alive(ghost)
    me = procs._stat(os.getpid())
    assert procs.alive(me) and not procs.alive(procs.Proc(me.pid, me.ppid, me.start + 1, "S", ""))


def test_a_child_started_with_child_preexec_dies_with_its_parent_even_a_sigkilled_one():
    """The middle process is SIGKILLed (no cleanup of its own runs); its child, started with
    `child_preexec`, gets SIGTERM from the kernel and exits."""
    mark = uuid.uuid4().hex
    code = ("import subprocess, sys, time\n"
            "from service import procs\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], preexec_fn=procs.child_preexec())\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(60)\n")
    middle = _python(code, {"LC_TEST_MARK": mark}, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert middle.stdout.readline().strip().isdigit()
    (child,) = [p for p in procs.marked("LC_TEST_MARK", mark) if p.pid != middle.pid]
    middle.kill()
    middle.wait()
    assert _wait_gone([child], 5) == []


def test_child_preexec_is_off_outside_the_main_thread():
    """PR_SET_PDEATHSIG fires when the parent *thread* ends: from a worker thread it would
    kill the child as soon as that thread finished, so it is not set there."""
    import threading
    got = []
    t = threading.Thread(target=lambda: got.append(procs.child_preexec()))
    t.start()
    t.join()
    assert got == [None]
    assert procs.child_preexec() is not None
