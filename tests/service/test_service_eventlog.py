"""The event log: one line per event, rotation by size, nothing lost."""
from __future__ import annotations

import errno
import json
import os

import pytest

from service.eventlog import EventLog
from service.outage import Unavailable


def test_rotation_keeps_every_line_in_order(tmp_path):
    log = EventLog(tmp_path, "w1", max_bytes=2000, backups=100)
    for i in range(500):
        log.write({"message": "next", "i": i})
    log.close()
    files = sorted(tmp_path.glob("events-w1.jsonl*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    assert len(files) > 5 and all(f.stat().st_size <= 2000 for f in files)
    lines = [json.loads(line)["i"] for f in files for line in f.read_text().splitlines()]
    assert lines == list(range(500))


def test_rotation_drops_beyond_backups(tmp_path):
    log = EventLog(tmp_path, "w1", max_bytes=500, backups=2)
    for i in range(300):
        log.write({"i": i})
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events-w1.jsonl", "events-w1.jsonl.1", "events-w1.jsonl.2"]
    last = [json.loads(x)["i"] for x in (tmp_path / "events-w1.jsonl").read_text().splitlines()]
    assert last[-1] == 299


def test_reopen_appends(tmp_path):
    for i in range(2):
        log = EventLog(tmp_path, "w1")
        log.write({"i": i})
        log.close()
    assert (tmp_path / "events-w1.jsonl").read_text().splitlines() == ['{"i":0}', '{"i":1}']


class FullDisk:
    """os.write as a full disk does it: the first call takes `room` bytes, later ones ENOSPC."""

    def __init__(self, real, room: int) -> None:
        self.real, self.room, self.calls = real, room, 0

    def __call__(self, fd: int, data) -> int:
        self.calls += 1
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = self.real(fd, bytes(data[:self.room]))
        self.room -= n
        return n


def test_short_write_is_continued_to_the_whole_line(tmp_path, monkeypatch):
    log = EventLog(tmp_path, "w1")
    real = os.write
    chunks = iter([5, 3, 1000])  # the kernel takes a line in three pieces

    def short(fd, data):
        return real(fd, bytes(data[:next(chunks)]))

    monkeypatch.setattr("service.eventlog.os.write", short)
    log.write({"message": "next", "i": 1})
    log.close()
    assert (tmp_path / "events-w1.jsonl").read_text() == '{"message":"next","i":1}\n'


def test_full_disk_leaves_no_partial_line_refuses_then_recovers(tmp_path, monkeypatch):
    log = EventLog(tmp_path, "w1", probe_interval=0)
    log.write({"i": 0})
    disk = FullDisk(os.write, room=4)  # room for 4 bytes of the next line, then ENOSPC
    monkeypatch.setattr("service.eventlog.os.write", disk)
    with pytest.raises(Unavailable, match="No space left"):
        log.write({"i": 1})
    assert disk.calls == 2  # the short write was continued, and failed
    assert (tmp_path / "events-w1.jsonl").read_text() == '{"i":0}\n'  # cut back to the last whole line
    assert log.outage.down
    monkeypatch.setattr("service.eventlog.os.open", _failing_open(os.open))  # the probe cannot write either
    assert not log.healthy()
    monkeypatch.undo()  # space is back
    assert log.healthy()  # the probe writes again (and removes what it wrote)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events-w1.jsonl"]
    log.write({"i": 2})
    assert not log.outage.down
    log.close()
    assert (tmp_path / "events-w1.jsonl").read_text() == '{"i":0}\n{"i":2}\n'


def test_failed_truncate_is_repaired_before_the_next_line(tmp_path, monkeypatch):
    log = EventLog(tmp_path, "w1")
    log.write({"i": 0})
    real_write, real_truncate = os.write, os.ftruncate
    monkeypatch.setattr("service.eventlog.os.write", FullDisk(os.write, room=3))
    monkeypatch.setattr("service.eventlog.os.ftruncate", lambda fd, n: (_ for _ in ()).throw(OSError(errno.EIO, "EIO")))
    with pytest.raises(Unavailable):
        log.write({"i": 1})
    assert (tmp_path / "events-w1.jsonl").read_text() == '{"i":0}\n{"i'  # the partial line is still there...
    monkeypatch.setattr("service.eventlog.os.write", real_write)
    monkeypatch.setattr("service.eventlog.os.ftruncate", real_truncate)
    log.write({"i": 2})  # ...and goes before anything else is written
    log.close()
    assert (tmp_path / "events-w1.jsonl").read_text() == '{"i":0}\n{"i":2}\n'


def _failing_open(real):
    def fake(path, flags, mode=0o777):
        if ".probe-" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, flags, mode)
    return fake
