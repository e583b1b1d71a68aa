"""How the service is launched: the port it is given, and how readiness is told apart from
another program answering on that port."""
from __future__ import annotations

import socket
import threading

from service import launch
from service.launch import free_port, wait_ready

ZMQ_GREETING = b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f"  # what BentoML's arbiter endpoints say first


def test_free_ports_are_never_ones_the_kernel_hands_out():
    """BentoML binds its ZeroMQ endpoints to ports the kernel picks (bind to port 0); a port
    from that range can be taken between free_port and the service's own bind."""
    low, high = launch._ephemeral_range()
    ports = {free_port() for _ in range(50)}
    assert all(p < low for p in ports) and len(ports) > 40
    for p in ports:  # and each is free
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    assert low <= held.getsockname()[1] <= high
    held.close()


def test_a_port_answering_another_protocol_is_not_ready():
    """A program that is not an HTTP server (here a ZeroMQ endpoint's greeting, then a close)
    is "not ready yet", so start() waits for its own server or reports its exit, instead of
    failing with http.client.BadStatusLine from the probe."""
    server = socket.socket()
    server.bind(("127.0.0.1", free_port()))
    server.listen()
    stop = threading.Event()

    def answer():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.sendall(ZMQ_GREETING)
            conn.close()

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        assert wait_ready(url, timeout=1.0, exited=lambda: False) == "timeout"
        assert wait_ready(url, timeout=5.0, exited=lambda: True) == "exited"
    finally:
        stop.set()
        t.join()
        server.close()
