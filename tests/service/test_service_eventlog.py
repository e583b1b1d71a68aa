"""The event log: one line per event, rotation by size, nothing lost."""
from __future__ import annotations

import json

from service.eventlog import EventLog


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
