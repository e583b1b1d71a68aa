"""A round-robin HTTP/1.1 load balancer for the replica check of `make container-test`:
each *request* (not each connection) goes to the next replica, so consecutive requests of
one session land on different containers and only shared state (Redis) can keep them
consistent. Keep-alive on both sides; bodies framed by Content-Length (what the service
and the simulator speak). A test harness, not a production proxy: use a real one there.

    python -m container.balancer --port 8080 http://127.0.0.1:3001 http://127.0.0.1:3002
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import sys

LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\r?$")


async def read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One HTTP message (head + Content-Length body), or None at end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    m = LENGTH.search(head)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    return head + body


class Balancer:
    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self.turn = itertools.cycle(range(len(backends)))
        self.counts = [0] * len(backends)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        try:
            while (request := await read_message(reader)) is not None:
                i = next(self.turn)
                self.counts[i] += 1
                if i not in conns:
                    conns[i] = await asyncio.open_connection(*self.backends[i])
                br, bw = conns[i]
                bw.write(request)
                await bw.drain()
                response = await read_message(br)
                if response is None:
                    break
                writer.write(response)
                await writer.drain()
        finally:
            for _, bw in conns.values():
                bw.close()
            writer.close()


async def serve(port: int, backends: list[str]) -> None:
    pairs = [(u.split("//")[1].split(":")[0], int(u.rsplit(":", 1)[1])) for u in backends]
    lb = Balancer(pairs)
    server = await asyncio.start_server(lb.handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("backends", nargs="+", help="http://HOST:PORT of each replica")
    args = ap.parse_args(argv)
    try:
        asyncio.run(serve(args.port, args.backends))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
