"""The remote agent against a real (tiny) HTTP server speaking the course's API:
keep-alive, the protocol, and clear errors when the service is down, slow or broken."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service.launch import free_port
from sim.agents import RemoteAgent, ServiceUnavailableError
from sim.run import main

SMALL = "sim/config/small.yml"


class FakeService:
    """Answers /next with the next track id (mod the small catalog's 2000), records
    requests and client connections."""

    def __init__(self, mode: str = "ok"):
        self.mode = mode
        self.requests: list[tuple[str, dict]] = []
        self.connections: set[int] = set()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True     # one segment per answer: no 40 ms delayed ACKs
            wbufsize = -1

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                service.requests.append((self.path, body))
                service.connections.add(self.client_address[1])
                if service.mode == "slow":
                    time.sleep(1.0)
                if service.mode == "error":
                    payload, status = b"boom", 500
                elif self.path.startswith("/next/"):
                    user = int(self.path.rsplit("/", 1)[1])
                    track = {"bad": "x", "far": 999999}.get(service.mode, (body["track"] + 1) % 2000)
                    payload, status = json.dumps({"user": user, "track": track}).encode(), 200
                else:
                    payload, status = json.dumps({"user": int(self.path.rsplit("/", 1)[1])}).encode(), 200
                self.send_response(status)
                if service.mode == "close":      # a server that does not keep connections
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False    # keep-alive handler threads end with the test
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_remote_run_speaks_the_course_api_over_one_connection(small_world, tmp_path, capsys):
    with FakeService() as svc:
        stats = tmp_path / "s.csv"
        assert main(["--config", SMALL, "--episodes", "15", "--stats", str(stats), "single",
                     "--recommender", "remote", "--url", svc.url, "--seed", "3"]) == 0
    assert len(svc.connections) == 1, "requests.Session keeps the connection alive"
    paths = [p.split("/")[1] for p, _ in svc.requests]
    assert paths.count("last") == 15
    first = svc.requests[0]
    assert first[0].startswith("/next/") and first[1]["time"] == 1.0
    for (p1, b1), (p2, b2) in zip(svc.requests, svc.requests[1:]):
        if p1.startswith("/next/") and p1.split("/")[2] == p2.split("/")[2]:
            assert b2["track"] == (b1["track"] + 1) % 2000   # the answer is what the user then heard
    assert "day 1: 15 episodes" in capsys.readouterr().out


def test_remote_and_inprocess_play_the_same_sessions(small_world, tmp_path, monkeypatch):
    """Same seed, same recommender logic: HTTP or in-process gives the same rows."""
    (tmp_path / "plus_one.py").write_text(
        "class P:\n"
        "    def recommend_next(self, user, prev_track, prev_time):\n"
        "        return (prev_track + 1) % 2000\n"
        "    def end_session(self, user, last_track, last_time):\n"
        "        pass\n"
        "def build():\n    return P()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    with FakeService() as svc:
        assert main(["--config", SMALL, "--episodes", "30", "--stats", str(a), "single",
                     "--recommender", "remote", "--url", svc.url]) == 0
    assert main(["--config", SMALL, "--episodes", "30", "--stats", str(b), "single",
                 "--recommender", "inprocess", "--factory", "plus_one:build"]) == 0
    assert a.read_text() == b.read_text()


def test_service_down_is_a_clear_error(small_world, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["--config", SMALL, "--episodes", "5", "single", "--recommender", "remote",
                 "--url", url]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the recommender service at {url}" in err and "bentoml serve" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("mode, message", [
    ("error", "answered 500 to POST /next/"),
    ("bad", "without an integer `track`"),
    ("slow", "did not answer POST /next/"),
])
def test_a_broken_service_is_a_clear_error(mode, message):
    with FakeService(mode) as svc:
        agent = RemoteAgent(svc.url, connect_timeout=1.0, read_timeout=0.2)
        with pytest.raises(ServiceUnavailableError, match=message):
            agent.recommend_next(4, 10, 1.0)
        agent.close()


def test_a_track_outside_the_catalog_from_the_service_names_it(small_world, capsys):
    with FakeService("far") as svc:
        code = main(["--config", SMALL, "--episodes", "5", "single", "--recommender", "remote",
                     "--url", svc.url])
    err = capsys.readouterr().err
    assert code == 1
    assert "the remote recommender answered a bad track: track 999999 is not in the catalog" in err


def test_a_server_closing_connections_is_followed_without_resending(small_world, tmp_path):
    with FakeService("close") as svc:
        assert main(["--config", SMALL, "--episodes", "5", "single", "--recommender", "remote",
                     "--url", svc.url]) == 0
    assert len(svc.connections) == len(svc.requests), "one fresh connection per request"
    assert sum(p.startswith("/last/") for p, _ in svc.requests) == 5


def test_an_idle_connection_closed_by_the_server_is_replaced_before_sending(small_world):
    with FakeService() as svc:
        agent = RemoteAgent(svc.url)
        assert agent.recommend_next(1, 10, 1.0) == 11
        agent._conn.sock.shutdown(2)          # as if the server had dropped it while idle
        assert agent.recommend_next(1, 11, 0.5) == 12
        agent.close()
    assert [b["track"] for _, b in svc.requests] == [10, 11], "nothing sent twice"


def test_a_malformed_url_is_a_clear_error(small_world, capsys):
    assert main(["--config", SMALL, "--episodes", "5", "single", "--recommender", "remote",
                 "--url", "localhost:3000"]) == 2
    assert "must look like http://HOST:PORT" in capsys.readouterr().err
