"""The event log the A/B analysis reads: one JSON line per accepted request.

Each worker process writes its own file `events-<worker>.jsonl` (no two writers share a
file, so lines never interleave) on an append-only descriptor. Files rotate by size to
`.1`, `.2`, ... keeping `backups` of them. What a line holds and how files are named and
rotated is `formats.events`, which training's reader uses too.

Whole lines or nothing: a write the kernel takes only in part (a full disk takes what
fits) is continued until the line is complete; if it fails (ENOSPC, EIO, ...), the file is
truncated back to where the line began and `Unavailable` is raised, so the caller changes
no state and answers 503. The file only ever holds whole lines.

Durability: a line is in the kernel's page cache once `write_line` returns, before the
session state changes and before the answer: it survives the worker being killed (even
with SIGKILL). It does not survive a power cut or a kernel crash until the kernel writes
it out (seconds); an fsync per request would cost a disk flush per request (milliseconds
on most disks), for a log whose session state (Redis without persistence, or memory)
would not survive a power cut either. `close` (shutdown) fsyncs.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from formats import events as event_format

from .outage import Outage, Unavailable

PROBE_BYTES = 4096  # what a readiness probe writes (and removes) beside the log while it is failing


class EventLog:
    def __init__(self, directory: str | Path, worker: str, max_bytes: int = 100 * 2**20, backups: int = 10,
                 probe_interval: float = 1.0) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / event_format.file_name(worker)
        self.max_bytes = max_bytes
        self.backups = backups
        self.outage = Outage(f"event log {self.path}")
        self.probe_interval = probe_interval
        self._probe_path = self.dir / f".probe-{worker}"
        self._probed = (float("-inf"), False)  # (when, whether the last probe could write)
        self._encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        self._fd: int | None = None
        self._truncate_to: int | None = None  # a failed write's start, if truncating back failed too
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size

    def write(self, event: dict) -> int:
        return self.write_line(self._encode(event) + "\n")

    def write_line(self, line: str) -> int:
        """Append one already-encoded JSON line (ending in a newline), whole; returns the offset
        where it starts. Raises `Unavailable`, with nothing written, if it cannot."""
        data = line.encode()
        try:
            if self._fd is None or self._truncate_to is not None:
                self._repair()
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            start = self._size
            n = os.write(self._fd, data)
            if n != len(data):  # a short write: the rest, until done or an error says why not
                view = memoryview(data)
                while n < len(data):
                    n += os.write(self._fd, view[n:])
        except OSError as e:
            if self._fd is not None:
                self._cut(self._size)
            self.outage.failed(e)
            raise Unavailable(f"event log cannot be written ({e.strerror or e}); nothing was recorded") from None
        self._size = start + len(data)
        if self.outage.down_since is not None:
            self.outage.ok()
        return start

    def _cut(self, offset: int) -> None:
        """Truncate the file back to `offset`; if that fails too, before the next write."""
        try:
            os.ftruncate(self._fd, offset)
            self._truncate_to = None
        except OSError:
            self._truncate_to = offset
        self._size = offset

    def _repair(self) -> None:
        if self._fd is None:
            self._open()
        if self._truncate_to is not None:
            os.ftruncate(self._fd, self._truncate_to)
            self._size, self._truncate_to = self._truncate_to, None

    def healthy(self) -> bool:
        """True unless the last write failed and a probe (at most one per `probe_interval`) still
        cannot write beside the log: what `/readyz` reports, so traffic returns once space does."""
        if self.outage.down_since is None:
            return True
        when, ok = self._probed
        now = time.monotonic()
        if now - when < self.probe_interval:
            return ok
        try:
            fd = os.open(self._probe_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                ok = os.write(fd, b"\n" * PROBE_BYTES) == PROBE_BYTES
            finally:
                os.close(fd)
                os.unlink(self._probe_path)
        except OSError:
            ok = False
        self._probed = (now, ok)
        return ok

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = None
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                src = event_format.rotated(self.path, i)
                if src.exists():
                    os.replace(src, event_format.rotated(self.path, i + 1))
            os.replace(self.path, event_format.rotated(self.path, 1))
        else:
            os.remove(self.path)
        self._open()

    def close(self) -> None:
        if self._fd is not None:
            try:
                self._repair()
                os.fsync(self._fd)
            except OSError as e:
                self.outage.log.error("event log %s: at close: %s", self.path, e)
            os.close(self._fd)
            self._fd = None
