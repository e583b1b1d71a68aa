"""Two worker processes sharing sessions through a real Redis give what one process gives."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import yaml

from service.botify import load
from service.launch import ServiceProcess
from svc_fixtures import make_world, play
from test_service_api import play_http

pytestmark = pytest.mark.slow

TIMES = [0.9, 0.2, 0.85, 0.0, 0.95, 0.5, 0.7, 0.1]


def test_two_workers_share_sessions_through_redis(tmp_path, redis_url):
    config = make_world(tmp_path, session_store={"kind": "redis", "url": redis_url, "prefix": "two:"})
    local_cfg = tmp_path / "local.yml"
    cfg = yaml.safe_load(config.read_text())
    cfg["session_store"] = {"kind": "memory"}
    cfg["event_log"] = False
    local_cfg.write_text(yaml.safe_dump(cfg))
    local = load(local_cfg)

    def served() -> dict[str, list]:
        logs = [f for f in (tmp_path / "logs").glob("events-*.jsonl")]
        return {f.name: [json.loads(x) for x in f.read_text().splitlines()] for f in logs}

    users: list[int] = []
    with ServiceProcess(str(config), workers=2) as svc:
        # a new connection per request (no keep-alive): requests land on either worker. On a
        # loaded machine one worker can win every accept() for a while: then more users
        for batch in range(3):
            new = list(range(2000 + 48 * batch, 2048 + 48 * batch))
            expected = {u: play(local, u, u % 200, TIMES) for u in new}
            with ThreadPoolExecutor(8) as pool:
                got = dict(zip(new, pool.map(lambda u: play_http(svc.url, u, u % 200, TIMES), new)))
            assert got == expected
            users += new
            if len([n for n, lines in served().items() if lines]) == 2:
                break

    per_file = served()
    assert len([n for n, lines in per_file.items() if lines]) == 2, "both workers served"
    assert sum(map(len, per_file.values())) == len(users) * (len(TIMES) + 1)
    # every session ended with /last: no session left behind, histories kept
    r = redis.Redis.from_url(redis_url)
    stored = [json.loads(r.get(k)) for k in r.keys("two:u:*")]
    assert len(stored) == len(users)
    assert all(d["s"] == [] and len(d["h"]) == len(TIMES) + 1 for d in stored)
