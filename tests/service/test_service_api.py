"""The course's HTTP API against the real BentoML service (`bentoml serve` in a subprocess)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from service.botify import load
from service.launch import ServiceProcess, ServiceStartError
from svc_fixtures import make_world, play

pytestmark = pytest.mark.slow


def log_lines(log_dir: Path) -> list[dict]:
    return [json.loads(x) for f in sorted(log_dir.glob("events-*.jsonl*")) for x in f.read_text().splitlines()]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    config = make_world(root)
    with ServiceProcess(str(config)) as svc:
        yield svc, root


def play_http(url: str, user: int, first: int, times: list[float], session=requests) -> list[int]:
    out, track, t = [], first, 1.0
    for x in times:
        r = session.post(f"{url}/next/{user}", json={"track": track, "time": t})
        assert r.status_code == 200, r.text
        assert r.json()["user"] == user
        track = r.json()["track"]
        out.append(track)
        t = x
    assert session.post(f"{url}/last/{user}", json={"track": track, "time": t}).json() == {"user": user}
    return out


def test_routes(served):
    svc, _ = served
    r = requests.get(svc.url + "/")
    assert r.status_code == 200 and r.json()["status"] == "alive"
    assert requests.get(svc.url + "/track/3").json() == {
        "track": 3, "artist": "artist 3", "title": "song 3", "genre": "folk", "year": 1993, "popularity": 10.0}
    for bad in ("200", "-1", "abc", "1e3"):
        r = requests.get(f"{svc.url}/track/{bad}")
        assert r.status_code == 404 and "not in the catalog" in r.json()["error"]
    r = requests.post(svc.url + "/next/4", json={"track": 3, "time": 1.0})
    assert r.status_code == 200 and r.json()["user"] == 4 and 0 <= r.json()["track"] < 200
    assert requests.post(svc.url + "/last/4", json={"track": 3, "time": 0.5}).json() == {"user": 4}


def test_bentoml_routes_beside_course_routes(served):
    svc, _ = served
    assert requests.get(svc.url + "/livez").status_code == 200
    assert requests.get(svc.url + "/readyz").status_code == 200
    requests.post(svc.url + "/next/77", json={"track": 3, "time": 1.0})
    metrics = requests.get(svc.url + "/metrics").text
    # per route template, never per user: a series per user would grow without bound
    assert 'botify_request_duration_seconds_count{route="/next/{user}",status="200"}' in metrics
    assert "/next/77" not in metrics
    docs = requests.get(svc.url + "/docs")
    assert docs.status_code == 200 and "<html" in docs.text.lower()
    spec = requests.get(svc.url + "/docs.json").json()
    assert {"/next/{user}", "/last/{user}", "/track/{track}"} <= set(spec["paths"])


BAD = [
    ("/next/1", b"{not json", 400, "malformed JSON"),
    ("/next/1", b'{"track": 1}', 400, "missing"),
    ("/next/1", b'{"time": 0.5}', 400, "missing"),
    ("/next/-1", b'{"track": 1, "time": 0.5}', 400, "non-negative integer"),
    ("/next/abc", b'{"track": 1, "time": 0.5}', 400, "non-negative integer"),
    ("/next/1", b'{"track": 1000, "time": 0.5}', 422, "not in the catalog"),
    ("/next/1", b'{"track": "5", "time": 0.5}', 400, "track must be an integer"),
    ("/next/1", b'{"track": 1, "time": 1.5}', 422, "within [0, 1]"),
    ("/next/1", b'{"track": 1, "time": -0.5}', 422, "within [0, 1]"),
    ("/next/1", b'{"track": 1, "time": "x"}', 400, "time must be a number"),
    ("/next/1", b'{"track": 1, "time": 0.5, "pad": "' + b"x" * 5000 + b'"}', 413, "larger than"),
    ("/last/1", b"[]", 400, "JSON object"),
    ("/last/x", b'{"track": 1, "time": 0.5}', 400, "non-negative integer"),
    ("/last/1", b'{"track": 1000, "time": 0.5}', 422, "not in the catalog"),
    ("/last/1", b'{"track": 1, "time": 2}', 422, "within [0, 1]"),
]


@pytest.mark.parametrize("path,body,status,message", BAD)
def test_bad_input_is_4xx_json_and_logs_nothing(served, path, body, status, message):
    svc, root = served
    before = len(log_lines(root / "logs"))
    r = requests.post(svc.url + path, data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status
    assert message in r.json()["error"]
    assert len(log_lines(root / "logs")) == before


def test_chunked_oversized_body_refused(served):
    svc, _ = served
    r = requests.post(svc.url + "/next/1", data=(b"x" * 1000 for _ in range(10)))
    assert r.status_code == 413


def test_http_equals_in_process_and_rejects_change_nothing(served, tmp_path):
    svc, root = served
    cfg = yaml.safe_load((root / "config.yml").read_text())
    cfg["event_log"]["dir"] = str(tmp_path)
    local_cfg = tmp_path / "local.yml"
    local_cfg.write_text(yaml.safe_dump(cfg))
    local = load(local_cfg, worker="local")
    times = [0.9, 0.1, 0.8, 0.3, 0.95, 0.0]
    for user in range(1000, 1012):
        # a rejected request in the middle of the session changes nothing
        expected = play(local, user, user % 200, times)
        requests.post(f"{svc.url}/next/{user}", json={"track": 5000, "time": 0.5})
        assert play_http(svc.url, user, user % 200, times) == expected
    local.close()
    strip = lambda e: {k: v for k, v in e.items() if k not in ("timestamp", "seq", "latency")}  # noqa: E731
    served = [e for e in log_lines(root / "logs") if 1000 <= e["user"] < 1012]
    assert [strip(e) for e in served] == [strip(e) for e in log_lines(tmp_path)]
    for user in range(1000, 1012):  # the seq: a user's requests in the order they were served
        seqs = [e["seq"] for e in served if e["user"] == user]
        assert len(seqs) == len(times) + 1 and seqs == sorted(set(seqs))


def test_concurrent_requests_all_logged(served):
    svc, root = served
    before = len(log_lines(root / "logs"))

    def client(i: int) -> int:
        with requests.Session() as s:
            for j in range(40):
                r = s.post(f"{svc.url}/next/{i * 1000 + j}", json={"track": j, "time": 0.5})
                assert r.status_code == 200
        return 40

    with ThreadPoolExecutor(8) as pool:
        sent = sum(pool.map(client, range(8)))
    assert len(log_lines(root / "logs")) - before == sent


def test_missing_artifact_fails_start_with_its_name(tmp_path):
    config = make_world(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["recommenders"]["session_aware"]["i2i"] = str(tmp_path / "missing-i2i.jsonl")
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ServiceStartError, match=r"(?s)missing-i2i\.jsonl.*mlflow run \. -e recommend"):
        with ServiceProcess(str(config), start_timeout=60):
            pass


def test_port_taken_is_reported(served):
    svc, _ = served
    with pytest.raises(ServiceStartError, match="already in use"):
        ServiceProcess(svc.config, port=svc.port).start()


def _listening(port: int) -> set[str]:
    import psutil
    return {c.laddr.ip for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_safe_defaults_loopback_and_no_benchmark_route(served, tmp_path):
    """The service binds 127.0.0.1 unless told otherwise, and ships no benchmark-only route."""
    svc, root = served
    assert _listening(svc.port) == {"127.0.0.1"}
    r = requests.post(svc.url + "/bench/trivial/1", json={"track": 1, "time": 1.0})
    assert r.status_code == 404
    status = requests.get(svc.url + "/").json()
    # file artifacts are reported by path (BentoML models by registry version: test_service_bentoml_model)
    assert status["models"]["session_aware"] == {"file": str(root / "i2i.jsonl")}
    with ServiceProcess(str(make_world(tmp_path)), host="0.0.0.0") as everywhere:
        assert _listening(everywhere.port) == {"0.0.0.0"}
        assert requests.get(everywhere.url + "/").status_code == 200


def test_server_process_imports_settings_only():
    # BentoML's server process imports service.py for its settings (workers) before it starts a
    # worker: the workers' logic (numpy, recommenders, catalog) is loaded in the workers only,
    # which took ~0.1 s off every start (issue 10)
    import subprocess
    import sys

    code = ("import sys, service.service\n"
            "print(sorted(m for m in ('numpy', 'service.botify', 'service.recommenders', 'service.catalog')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
