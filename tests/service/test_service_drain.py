"""Serverless-style behaviour with a real process: SIGTERM (what `docker stop` and any
orchestrator send) drains a request in flight: answered and logged before the server exits."""
from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest
import requests

from service.launch import ServiceProcess
from svc_fixtures import make_world

pytestmark = pytest.mark.slow


def _read_response(s: socket.socket) -> bytes:
    """One whole HTTP response: its head, then Content-Length bytes of body (a loaded
    machine may deliver them in several reads)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_sigterm_drains_the_request_in_flight(tmp_path):
    config = make_world(tmp_path)
    body = b'{"track": 5, "time": 1.0}'
    with ServiceProcess(str(config)) as svc:
        s = socket.create_connection(("127.0.0.1", svc.port), timeout=20)
        # the request's head is in, its body not yet: a request in flight when SIGTERM arrives
        s.sendall(b"POST /next/7 HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        # another request answered after it means the worker's event loop has read that head
        # (a loaded machine can take longer than any fixed sleep)
        assert requests.get(svc.url + "/livez", timeout=30).status_code == 200
        time.sleep(0.2)
        os.killpg(svc.proc.pid, signal.SIGTERM)
        time.sleep(1.0)
        assert svc.proc.poll() is None, "the server quit with a request in flight"
        s.sendall(body)
        answer = _read_response(s)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["user"] == 7
        assert svc.proc.wait(timeout=30) == 0
    lines = [json.loads(x) for f in (tmp_path / "logs").glob("events-*.jsonl") for x in f.read_text().splitlines()]
    assert [(x["message"], x["user"], x["track"]) for x in lines] == [("next", 7, 5)]
