"""The event log the A/B analysis reads: one JSON line per accepted request.

Each worker process writes its own file `events-<worker>.jsonl` (no two writers share a
file, so lines never interleave) with one `write()` per line on an append-only
descriptor: a line is in the file once the request is answered, so nothing is lost if
the worker dies, and closing on shutdown is all the flushing there is. Files rotate by
size to `.1`, `.2`, ... keeping `backups` of them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


class EventLog:
    def __init__(self, directory: str | Path, worker: str, max_bytes: int = 100 * 2**20, backups: int = 10) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"events-{worker}.jsonl"
        self.max_bytes = max_bytes
        self.backups = backups
        self._encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        self._fd: int | None = None
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size

    def write(self, event: dict) -> None:
        self.write_line(self._encode(event) + "\n")

    def write_line(self, line: str) -> None:
        """One already-encoded JSON line, ending in a newline."""
        data = line.encode()
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        os.write(self._fd, data)
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{i}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            os.remove(self.path)
        self._open()

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
