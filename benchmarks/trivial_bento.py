"""The smallest BentoML service with the course's `POST /next/{user}` shape: the floor of
BentoML's own start-up and per-request cost, for `benchmarks.coldstart` and `benchmarks.service`.

    bentoml serve benchmarks.trivial_bento:Trivial --port 3002
"""
from __future__ import annotations

import json

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/next/{user}")
async def next_track(user: str, request: Request) -> Response:
    data = json.loads(await request.body())
    return Response(b'{"user":%d,"track":%d}' % (int(user), data["track"]), media_type="application/json")


@bentoml.service(name="trivial", workers=1, http={"host": "127.0.0.1"}, logging={"access": {"enabled": False}},
                 metrics={"enabled": False}, tracing={"sample_rate": 0.0, "excluded_urls": ".*"})
@bentoml.asgi_app(app, path="/")
class Trivial:
    pass
