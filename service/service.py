"""The BentoML service: the course's exact routes at the root, BentoML's /livez, /readyz,
/metrics beside them, its Swagger UI moved to /docs.

Wiring only: each route parses, calls `service.botify.Botify`, and answers. The config
comes from BOTIFY_CONFIG (default service/config/cold_start.yml); the number of worker
processes from BOTIFY_WORKERS or the config's `workers` (default 1; more need a Redis
session store).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response

from service.botify import Botify as Core
from service.botify import RequestError, config_path, load, read_config

EVENT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["track", "time"],
    "properties": {"track": {"type": "integer", "minimum": 0},
                   "time": {"type": "number", "minimum": 0, "maximum": 1}}}}}}}
JSON = "application/json"
logger = logging.getLogger("botify")

app = FastAPI(title="Botify", docs_url=None, redoc_url=None, openapi_url=None)


def _error(e: RequestError) -> Response:
    return Response(json.dumps({"error": str(e)}), status_code=e.status, media_type=JSON)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without reading them all."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestError(f"body larger than {limit} bytes", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"body larger than {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _core(request: Request) -> Core:
    return request.app.state.botify


@app.get("/", summary="The course's status answer")
async def index(request: Request) -> Response:
    return Response(json.dumps(_core(request).status()), media_type=JSON)


@app.get("/track/{track}", summary="A catalog track; 404 if unknown")
async def track(track: str, request: Request) -> Response:
    data = _core(request).track_json(track)
    if data is None:
        return Response(json.dumps({"error": f"track {track[:40]!r} is not in the catalog"}),
                        status_code=404, media_type=JSON)
    return Response(data, media_type=JSON)


@app.post("/next/{user}", summary="The next track for a user, given the track just played",
          openapi_extra=EVENT_BODY)
async def next_track(user: str, request: Request) -> Response:
    started = time.perf_counter()
    core = _core(request)
    try:
        uid = core.parse_user(user)
        prev, listened = core.parse_event(await _read_body(request, core.max_body_bytes))
    except RequestError as e:
        return _error(e)
    rec = core.recommend_next(uid, prev, listened, started)
    return Response(b'{"user":%d,"track":%d}' % (uid, rec), media_type=JSON)


@app.post("/last/{user}", summary="End the user's session with its last track", openapi_extra=EVENT_BODY)
async def last_track(user: str, request: Request) -> Response:
    started = time.perf_counter()
    core = _core(request)
    try:
        uid = core.parse_user(user)
        prev, listened = core.parse_event(await _read_body(request, core.max_body_bytes))
    except RequestError as e:
        return _error(e)
    core.end_session(uid, prev, listened, started)
    return Response(b'{"user":%d}' % uid, media_type=JSON)


@app.post("/bench/trivial/{user}", include_in_schema=False)
async def trivial(user: str, request: Request) -> Response:
    """BentoML's ceiling for the benchmark: parses the same JSON, touches no state."""
    data = json.loads(await request.body())
    return Response(b'{"user":%d,"track":%d}' % (int(user), data["track"]), media_type=JSON)


@app.get("/docs", include_in_schema=False)
async def docs() -> FileResponse:
    """BentoML's Swagger UI, which it would put at `/`, where the course's status lives."""
    import _bentoml_impl.server as impl
    from bentoml._internal.configuration.containers import BentoMLContainer

    page = "main-ui.html" if BentoMLContainer.new_index else "main-openapi.html"
    return FileResponse(Path(impl.__file__).parent / page)


def _workers() -> int:
    env = os.environ.get("BOTIFY_WORKERS")
    if env:
        return int(env)
    try:
        return int(read_config(config_path()).get("workers", 1))
    except (OSError, ValueError):
        return 1  # the service's own start-up reports the config problem


@bentoml.service(
    name="botify",
    workers=_workers(),
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},  # the event log is the service's record
    tracing={"sample_rate": 0.0},
    endpoints={"livez": "/livez", "readyz": "/readyz"},
)
@bentoml.asgi_app(app, path="/")
class Botify:
    """One instance per worker process, each with its own event log file."""

    def __init__(self) -> None:
        worker = bentoml.server_context.worker_index
        name = f"w{worker}-{os.getpid()}" if worker is not None else str(os.getpid())
        try:
            self.core = load(worker=name)
        except Exception as e:
            # BentoML would restart this worker every 10 s forever; a missing artifact or a
            # bad config will not fix itself, so stop the whole server with the reason.
            logger.error("Botify cannot start, stopping the server: %s", e)
            os.kill(os.getppid(), signal.SIGTERM)
            raise
        app.state.botify = self.core

    @bentoml.on_shutdown
    def close(self) -> None:
        self.core.close()
