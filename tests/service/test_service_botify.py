"""The service logic without HTTP: config, artifacts, sessions, determinism, the event log."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from service.botify import RequestError, load
from service.catalog import ArtifactError
from svc_fixtures import play


def events(log_dir: Path) -> list[dict]:
    return [json.loads(x) for f in sorted(log_dir.glob("events-*.jsonl")) for x in f.read_text().splitlines()]


def test_log_line_per_event_with_all_arms(world):
    b = load(world, worker="t")
    recs = play(b, 3, 5, [0.5, 0.2, 0.9])
    b.close()
    ev = events(world.parent / "logs")
    assert [e["message"] for e in ev] == ["next", "next", "next", "last"]
    assert [e["recommendation"] for e in ev] == recs + [None]
    assert [e["track"] for e in ev] == [5] + recs
    assert [e["time"] for e in ev] == [1.0, 0.5, 0.2, 0.9]
    assert all(e["user"] == 3 and set(e["experiments"]) == {"EXP", "AA"} for e in ev)
    assert all(isinstance(e["timestamp"], int) and 0 <= e["latency"] < 1 for e in ev)
    # the serving policy's probability of its answer; a "last" recommends nothing
    arm = ev[0]["experiments"]["EXP"]
    expected = 1.0 / 200 if arm == "C" else 1.0   # Random over 200 tracks, or SessionAware's greedy pick
    assert [e["propensity"] for e in ev] == [expected] * 3 + [None]


def test_same_requests_same_recommendations_across_instances_and_stores(world, redis_url, tmp_path):
    def run(b):
        out = [play(b, u, u * 3 % 200, [0.9, 0.1, 0.5, 0.7]) for u in range(40)]
        b.close()
        return out

    a = run(load(world, worker="a"))
    assert a == run(load(world, worker="b"))
    cfg = yaml.safe_load(world.read_text())
    cfg["session_store"] = {"kind": "redis", "url": redis_url, "prefix": f"det:{tmp_path.name}:"}
    redis_cfg = tmp_path / "redis.yml"
    redis_cfg.write_text(yaml.safe_dump(cfg))
    assert a == run(load(redis_cfg, worker="c"))
    # and the session state matters: session-aware users never get a track twice
    b = load(world, worker="d")
    for u in range(40):
        if b.arms(u)["EXP"] == "T1":
            recs = play(b, u, 10, [0.9] * 15)
            assert len(set(recs)) == len(recs) and 10 not in recs


def test_last_clears_session(world):
    b = load(world, worker="t")
    user = next(u for u in range(100) if b.arms(u)["EXP"] == "T1")
    first = play(b, user, 10, [0.9, 0.9])
    assert b.store.get(user).session == []
    assert play(b, user, 10, [0.9, 0.9]) == first  # a fresh session from the same track: same anchor


def test_parse_event_rejects_bad_input(world):
    b = load(world, worker="t")
    bad = {
        b"{": 400, b"[1, 2]": 400, b'{"track": 1}': 400, b'{"time": 0.5}': 400,
        b'{"track": "1", "time": 0.5}': 400, b'{"track": 1.5, "time": 0.5}': 400,
        b'{"track": true, "time": 0.5}': 400, b'{"track": 1, "time": "0.5"}': 400,
        b'{"track": 1, "time": null}': 400, b'{"track": 1, "time": true}': 400,
        b'{"track": 200, "time": 0.5}': 422, b'{"track": -1, "time": 0.5}': 422,
        b'{"track": 1, "time": 1.01}': 422, b'{"track": 1, "time": -0.1}': 422,
        b'{"track": 1, "time": NaN}': 422, b"x" * 5000: 413,
    }
    for body, status in bad.items():
        with pytest.raises(RequestError) as e:
            b.parse_event(body)
        assert e.value.status == status, body
    assert b.parse_event(b'{"track": 199, "time": 1}') == (199, 1.0)
    for user in ("-1", "x", "1.5", "", "1" * 19, "١"):
        with pytest.raises(RequestError):
            b.parse_user(user)
    assert b.parse_user("0") == 0


def test_missing_or_malformed_artifact_names_file_and_command(world, tmp_path):
    cfg = yaml.safe_load(world.read_text())
    cfg["recommenders"]["session_aware"]["i2i"] = str(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ArtifactError, match=r"nope\.jsonl.*mlflow run \. -e recommend"):
        load(bad)
    (tmp_path / "nope.jsonl").write_text('{"track": 0, "recommendations": [1, 99999]}\n')
    with pytest.raises(ArtifactError, match=r"nope\.jsonl: malformed.*mlflow run \. -e recommend"):
        load(bad)
    cfg["catalog"] = str(tmp_path / "none.json")
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ArtifactError, match=r"none\.json.*python -m sim\.world"):
        load(bad)


def test_unused_recommenders_need_no_artifacts(world, tmp_path):
    cfg = yaml.safe_load(world.read_text())
    cfg["recommenders"]["contextual"]["i2i"] = str(tmp_path / "absent.jsonl")  # no arm uses it
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump(cfg))
    load(path).close()


def test_toppop_from_log(world, tmp_path):
    log = tmp_path / "old"
    log.mkdir()
    (log / "events-1.jsonl").write_text("".join(json.dumps(
        {"message": "next", "timestamp": i, "user": 1, "track": t, "time": 1.0}) + "\n"
        for i, t in enumerate([4] * 5 + [9] * 3 + [1])))
    cfg = yaml.safe_load(world.read_text())
    cfg["recommenders"]["toppop"] = {"kind": "toppop", "top": 2, "log": str(log)}
    cfg["experiments"] = [{"name": "E", "arms": {"C": "toppop"}}]
    cfg["event_log"] = False
    path = tmp_path / "t.yml"
    path.write_text(yaml.safe_dump(cfg))
    b = load(path)
    assert {b.recommend_next(u, 0, 1.0) for u in range(50)} == {4, 9}
    # a log training would refuse, the service refuses too, naming the line
    with (log / "events-1.jsonl").open("a") as f:
        f.write('{"message": "skip", "timestamp": 9, "user": 1, "track": 2, "time": 1.0}\n')
    with pytest.raises(ArtifactError, match=r"events-1\.jsonl: malformed event log \(line 10: unknown message 'skip'"):
        load(path)


def test_numpy_scalars_in_process_log_plain_json(world):
    import numpy as np

    b = load(world, worker="np")
    rec = b.recommend_next(np.int64(3), np.int64(5), np.float64(1.0))
    b.end_session(np.int32(3), np.int64(rec), np.float32(0.25))
    b.close()
    ev = events(world.parent / "logs")
    assert [(e["user"], e["track"], e["time"]) for e in ev] == [(3, 5, 1.0), (3, rec, 0.25)]
    assert type(ev[0]["time"]) is float and ev[1]["recommendation"] is None


def test_a_log_that_cannot_be_written_changes_no_state(world, monkeypatch):
    import errno

    from service.botify import Unavailable

    b = load(world, worker="full")
    first = b.recommend_next(8, 5, 1.0)
    before = b.store.get(8)

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("service.eventlog.os.write", full)
    with pytest.raises(Unavailable):
        b.recommend_next(8, first, 0.5)
    with pytest.raises(Unavailable):
        b.end_session(8, first, 0.5)
    assert b.store.get(8) == before  # the log failed: the listen was not recorded
    monkeypatch.undo()
    b.recommend_next(8, first, 0.5)
    assert [t for t, _ in b.store.get(8).session] == [5, first]
    b.close()
    assert [(e["message"], e["track"]) for e in events(world.parent / "logs")] == [("next", 5), ("next", first)]


def test_deeply_nested_json_is_a_400(world):
    b = load(world, worker="t")
    for body in (b"[" * 3000 + b"]" * 3000, b'{"track": ' + b"[" * 2000 + b"]" * 2000 + b', "time": 0.5}',
                 b'{"track": 1, "time": ' + b"{" * 1500 + b"}" * 1500 + b"}"):
        with pytest.raises(RequestError) as e:
            b.parse_event(body[:4096])
        assert e.value.status in (400, 413)


def test_corrupt_catalog_is_reported_at_its_line(tmp_path):
    from service.catalog import load_catalog
    from svc_fixtures import write_catalog

    path = write_catalog(tmp_path / "public" / "tracks.json", n=20)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:6]) + lines[6][:25] + "\n" + "".join(lines[7:]))  # line 7 cut short
    with pytest.raises(ArtifactError, match=r"line 7: not valid JSON.*python -m sim\.world"):
        load_catalog(path)
    path.write_text("".join(lines[:12]))  # cut at a line boundary: parses, but the world knows its size
    (tmp_path / "public" / "world.json").write_text(json.dumps({"tracks": 20}))
    with pytest.raises(ArtifactError, match=r"12 tracks but world\.json says 20.*python -m sim\.world"):
        load_catalog(path)


def test_catalog_records_blank_lines_and_bad_bytes(tmp_path):
    # the catalog keeps the file's bytes and each track's span (not 50k line strings): records,
    # blank and padded lines and a chunk that does not parse whole read as line by line
    from service.catalog import CHUNK_LINES, load_catalog
    from svc_fixtures import write_catalog

    path = write_catalog(tmp_path / "tracks.json", n=CHUNK_LINES + 30)
    lines = path.read_text().splitlines()
    expected = [json.loads(x) for x in lines]
    lines[3] = "  " + lines[3] + " \r"
    lines[CHUNK_LINES + 5] = lines[CHUNK_LINES + 5].replace('"song', '"caf\\u00e9 \u00e9 song')
    expected[CHUNK_LINES + 5] = json.loads(lines[CHUNK_LINES + 5])
    text = "\n".join(lines[:10] + ["", "   "] + lines[10:])  # blank lines, and no final newline
    path.write_bytes(text.encode())
    cat = load_catalog(path)
    assert len(cat) == CHUNK_LINES + 30
    assert [cat.record(t) for t in range(len(cat))] == expected
    assert cat.record(CHUNK_LINES + 5)["title"].startswith("café é song")
    bad = text.encode().replace(b'"song 17"', b'"song \xff17"')
    path.write_bytes(bad)
    with pytest.raises(ArtifactError, match=r"line 20: not UTF-8 text"):
        load_catalog(path)
