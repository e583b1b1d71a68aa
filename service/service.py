"""The BentoML service: the course's exact routes at the root, BentoML's /livez, /readyz,
/metrics beside them, its Swagger UI moved to /docs.

Wiring only: each route parses, calls `service.botify.Botify`, and answers. The config
comes from BOTIFY_CONFIG (default service/config/cold_start.yml); the number of worker
processes from BOTIFY_WORKERS or the config's `workers` (default 1; more need a Redis
session store).
"""
from __future__ import annotations

import gc
import json
import logging
import os
import secrets
import time
from typing import TYPE_CHECKING, Awaitable, Callable

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from service import seam
from service.config import bentoml_models, making, read_config, served_config
from service.errors import RequestError
from service.metrics import RouteMetrics, exposition
from service.outage import Unavailable

if TYPE_CHECKING:
    from service.botify import Botify as Core

EVENT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["track", "time"],
    "properties": {"track": {"type": "integer", "minimum": 0},
                   "time": {"type": "number", "minimum": 0, "maximum": 1}}}}}}}
JSON = "application/json"
DEFAULT_HOST = "127.0.0.1"
logger = logging.getLogger("botify")
seam.on_import()  # BentoML's server process imports this module before it starts any worker

app = FastAPI(title="Botify", docs_url=None, redoc_url=None, openapi_url=None)


def _error(e: RequestError) -> Response:
    return Response(json.dumps({"error": str(e)}), status_code=e.status, media_type=JSON)


def _unavailable(e: Unavailable, request: Request, route: str, started: float) -> Response:
    """503: a dependency failed and nothing was recorded (service/outage.py); logged once per outage."""
    request.app.state.metrics.observe(route, 503, started)
    return Response(json.dumps({"error": str(e)}), status_code=503, media_type=JSON,
                    headers={"Retry-After": str(e.retry_after)})


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without reading them all.

    A course request's body (~30 bytes) arrives whole in the first ASGI message: taken
    straight from `receive`, without Starlette's async-generator stream, its per-chunk
    bookkeeping or a header lookup; only a body that comes in pieces checks Content-Length."""
    receive = request.receive
    message = await receive()
    if message["type"] != "http.request":  # http.disconnect: nobody to answer
        raise ClientDisconnect()
    chunk = message.get("body", b"")
    size = len(chunk)
    if size > limit:
        raise RequestError(f"body larger than {limit} bytes", 413)
    if not message.get("more_body", False):
        return chunk
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestError(f"body larger than {limit} bytes", 413)
    chunks, more = [chunk], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
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


async def _answer(user: str, request: Request, route: str,
                  serve: Callable[[Core, int, int, float, float], Awaitable[bytes]]) -> Response:
    """Parse a `/next` or `/last` request, `serve` it, count it and answer it."""
    started = time.perf_counter()
    core = _core(request)
    try:
        uid = core.parse_user(user)
        prev, listened = core.parse_event(await _read_body(request, core.max_body_bytes))
    except RequestError as e:
        request.app.state.metrics.observe(route, e.status, started)
        return _error(e)
    except ClientDisconnect:  # gone before its body arrived: nobody to answer, nothing to log
        return Response(status_code=400)
    try:
        body = await serve(core, uid, prev, listened, started)
    except Unavailable as e:
        return _unavailable(e, request, route, started)
    request.app.state.metrics.observe(route, 200, started)
    return Response(body, media_type=JSON)


async def _next(core: Core, user: int, track: int, listened: float, started: float) -> bytes:
    if core.store.is_async:  # Redis: awaited, a slow store holds this request only
        rec = await core.recommend_next_async(user, track, listened, started)
    else:
        rec = core.recommend_next(user, track, listened, started)
    return b'{"user":%d,"track":%d}' % (user, rec)


async def _last(core: Core, user: int, track: int, listened: float, started: float) -> bytes:
    await core.end_session_async(user, track, listened, started)
    return b'{"user":%d}' % user


@app.post("/next/{user}", summary="The next track for a user, given the track just played",
          openapi_extra=EVENT_BODY)
async def next_track(user: str, request: Request) -> Response:
    return await _answer(user, request, "/next/{user}", _next)


@app.post("/last/{user}", summary="End the user's session with its last track", openapi_extra=EVENT_BODY)
async def last_track(user: str, request: Request) -> Response:
    return await _answer(user, request, "/last/{user}", _last)


@app.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus's exposition of every worker's figures, Botify's per-route metrics among them."""
    metrics = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.flush()  # this worker's figures are current; the others' at most a second old
    # reads every worker's files: off the event loop, as BentoML's own route does
    body, content_type = await run_in_threadpool(exposition)
    return Response(body, media_type=content_type)


@app.get("/docs", include_in_schema=False)
async def docs() -> FileResponse:
    """BentoML's Swagger UI, which it would put at `/`, where the course's status lives."""
    return FileResponse(seam.swagger_page())


# what this server serves: BOTIFY_CONFIG, else the Bento's `config` argument, else the cold start
CONFIG = served_config(getattr(bentoml.use_arguments(), "config", None))


def _read_config() -> dict:
    try:
        return read_config(CONFIG)
    except (OSError, ValueError):
        return {}  # the service's own start-up reports the config problem


def _workers() -> int:
    env = os.environ.get("BOTIFY_WORKERS")
    return int(env) if env else int(_read_config().get("workers", 1))


def declare_models(cls: type) -> type:
    """BentoML's model declaration, one class attribute per BentoML model the served config
    names: `bentoml build` packs exactly those into the Bento, and `bentoml serve` has them
    before any worker starts. One that is missing stops here, naming the command that makes it
    (BentoML's own message would send the user to its cloud)."""
    for tag in bentoml_models(_read_config()):
        try:
            bentoml.models.get(tag)
        except Exception as e:  # NotFound, a bad tag: either way the server cannot start
            raise SystemExit(f"Botify cannot start: {CONFIG} serves BentoML model {tag}, which is not in the "
                             f"store ({e}). It is produced by: {making(tag)}") from None
        setattr(cls, tag.split(":", 1)[0].replace("-", "_"), bentoml.models.BentoModel(tag))
    return cls


@bentoml.service(
    name="botify",
    workers=_workers(),
    # loopback unless told otherwise (`bentoml serve --host 0.0.0.0` or BENTOML_HOST): a
    # recommender's API and its /metrics are not for the whole network by default
    http={"host": DEFAULT_HOST},
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},  # the event log is the service's record
    # BentoML's metrics label by raw path (a series per user): replaced by RouteMetrics
    metrics={"enabled": False},
    # no spans: even unsampled, OpenTelemetry's middleware is a large share of a request
    tracing={"sample_rate": 0.0, "excluded_urls": ".*"},
    endpoints={"livez": "/livez", "readyz": "/readyz"},
)
@bentoml.asgi_app(app, path="/")
@declare_models
class Botify:
    """One instance per worker process, each with its own event log file."""

    def __init__(self) -> None:
        worker = bentoml.server_context.worker_index
        # plus a random tag: replicas (containers) sharing one log folder have the same pids,
        # and with --network host the same host name too; two writers must never share a file
        tag = secrets.token_hex(3)
        name = f"w{worker}-{os.getpid()}-{tag}" if worker is not None else f"{os.getpid()}-{tag}"
        try:
            # the workers' logic is imported here, in the worker: BentoML's server process imports
            # this module too, for the settings above only (service/config.py)
            from service.botify import load

            self.core = load(CONFIG, worker=name)
        except Exception as e:
            # a missing artifact or a bad config will not fix itself: stop the server (seam.py)
            logger.error("Botify cannot start, stopping the server: %s", e)
            seam.stop_server(str(e))
            raise
        app.state.botify = self.core
        app.state.metrics = RouteMetrics(self.core.store)
        # What is loaded by now lives as long as the worker: frozen, the cyclic GC never walks
        # it again (a full pass over the catalog stalled requests). Not collected first: a
        # full pass costs start-up time and finds next to nothing.
        gc.freeze()
        # A request allocates hundreds of short-lived objects: the default threshold ran a
        # young collection every few requests and an old one every few hundred (p99 latency)
        gc.set_threshold(50_000, 20, 100)

    async def __is_ready__(self) -> bool:
        """`/readyz`: the event log can be written and the session store answers."""
        return await self.core.ahealthy()

    @bentoml.on_shutdown
    def close(self) -> None:
        app.state.metrics.flush()
        self.core.close()
