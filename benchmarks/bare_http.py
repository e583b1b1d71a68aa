"""The machine's HTTP ceiling: one bare ASGI route that parses the same JSON as `POST /next`.

Both the service benchmark (BentoML against bare uvicorn) and the simulator's remote
benchmark (client against the fastest possible server) run this one app, so "the
ceiling" means the same thing in both reports:

    python -m uvicorn benchmarks.bare_http:app --port 8001

It answers `{"user", "track"}` with a track inside a 50,000-track catalog
(`BARE_HTTP_TRACKS` changes the size), so a simulator can keep playing against it.
"""
from __future__ import annotations

import json
import os

TRACKS = int(os.environ.get("BARE_HTTP_TRACKS", "50000"))


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                return
    body, more = b"", True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    data = json.loads(body)
    user = int(scope["path"].rsplit("/", 1)[1])
    track = (int(data["track"]) * 7919 + 1) % TRACKS
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"user":%d,"track":%d}' % (user, track)})
