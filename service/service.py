"""The BentoML service: the course's exact routes at the root, BentoML's /livez, /readyz,
/metrics beside them, its Swagger UI moved to /docs.

Wiring only: each route parses, calls `service.botify.Botify`, and answers. The config
comes from BOTIFY_CONFIG (default service/config/cold_start.yml); the number of worker
processes from BOTIFY_WORKERS or the config's `workers` (default 1; more need a Redis
session store).
"""
from __future__ import annotations

import asyncio
import bisect
import collections
import functools
import gc
import json
import logging
import os
import secrets
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from service import instance
from service.config import config_path, read_config
from service.errors import RequestError
from service.outage import Unavailable
from service.procs import die_with_parent

if TYPE_CHECKING:
    from service.botify import Botify as Core

EVENT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["track", "time"],
    "properties": {"track": {"type": "integer", "minimum": 0},
                   "time": {"type": "number", "minimum": 0, "maximum": 1}}}}}}}
JSON = "application/json"
DEFAULT_HOST = "127.0.0.1"
logger = logging.getLogger("botify")
instance.setup()  # in the server process: its own metrics folder, a non-zero exit if a worker cannot start

ARBITER_ENV = "BOTIFY_ARBITER_PID"


def _die_with_arbiter() -> None:
    """A worker must not outlive its server. BentoML starts each worker in a session of its
    own, so a SIGKILLed arbiter left its workers holding the port and serving on, unseen
    (issue 11): each worker asks for SIGTERM when its parent dies (PR_SET_PDEATHSIG). The
    arbiter imports this module too, before it forks workers, and notes its pid for them: a
    worker whose arbiter died before the request took effect sees it and exits at once."""
    if bentoml.server_context.worker_index is None:  # the arbiter (or any other importer)
        os.environ[ARBITER_ENV] = str(os.getpid())
        return
    die_with_parent(signal.SIGTERM)
    arbiter = os.environ.get(ARBITER_ENV, "")
    if arbiter.isdigit() and int(arbiter) != os.getppid() and not os.path.exists(f"/proc/{arbiter}"):
        raise SystemExit(f"Botify worker {os.getpid()}: its server (pid {arbiter}) is gone")


_die_with_arbiter()

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


async def _event(user: str, request: Request, route: str):
    """Parse a `/next` or `/last` request: (core, user id, track, time, start) or an error answer."""
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
    return core, uid, prev, listened, started


@app.post("/next/{user}", summary="The next track for a user, given the track just played",
          openapi_extra=EVENT_BODY)
async def next_track(user: str, request: Request) -> Response:
    parsed = await _event(user, request, "/next/{user}")
    if isinstance(parsed, Response):
        return parsed
    core, uid, prev, listened, started = parsed
    try:
        if core.store.is_async:  # Redis: awaited, a slow store holds this request only
            rec = await core.recommend_next_async(uid, prev, listened, started)
        else:
            rec = core.recommend_next(uid, prev, listened, started)
    except Unavailable as e:
        return _unavailable(e, request, "/next/{user}", started)
    request.app.state.metrics.observe("/next/{user}", 200, started)
    return Response(b'{"user":%d,"track":%d}' % (uid, rec), media_type=JSON)


@app.post("/last/{user}", summary="End the user's session with its last track", openapi_extra=EVENT_BODY)
async def last_track(user: str, request: Request) -> Response:
    parsed = await _event(user, request, "/last/{user}")
    if isinstance(parsed, Response):
        return parsed
    core, uid, prev, listened, started = parsed
    try:
        await core.end_session_async(uid, prev, listened, started)
    except Unavailable as e:
        return _unavailable(e, request, "/last/{user}", started)
    request.app.state.metrics.observe("/last/{user}", 200, started)
    return Response(b'{"user":%d}' % uid, media_type=JSON)


@app.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """BentoML's Prometheus exposition (all workers), with Botify's per-route metrics in it."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    client = BentoMLContainer.metrics_client.get()
    metrics = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.flush()  # this worker's figures are current; the others' at most a second old
    # reads every worker's files: off the event loop, as BentoML's own route does
    return Response(await run_in_threadpool(client.generate_latest), media_type=client.CONTENT_TYPE_LATEST)


class RouteMetrics:
    """Request count and latency per route *template* and status.

    BentoML's own metrics middleware labels by the raw path, so `/next/{user}` makes one
    Prometheus series per user: memory and the multiprocess files grow without bound, and
    their growth stalls requests for hundreds of ms. It is turned off below; this replaces it.

    Observations are kept in the worker and written to Prometheus's multiprocess files at
    most once a second (and before this worker's `/metrics` answer, and at shutdown): a
    histogram observe there walks the buckets in Python and takes a lock per value written,
    ~8 us of a ~250 us request under load; a list append costs well under 1 us.
    """

    BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
    FLUSH_SECONDS = 1.0

    def __init__(self, store: object = None) -> None:
        import prometheus_client  # after BentoML set PROMETHEUS_MULTIPROC_DIR in the worker

        self.duration = prometheus_client.Histogram(
            "botify_request_duration_seconds", "Time to answer a request, by route and status",
            labelnames=["route", "status"], buckets=self.BUCKETS)
        # the memory store's size and evictions (it is bounded: session_store.max_users)
        self._store = store if hasattr(store, "evictions") else None
        if self._store is not None:
            self.users = prometheus_client.Gauge("botify_memory_store_users", "Users held by the memory session store",
                                                 multiprocess_mode="livesum")
            self.evictions = prometheus_client.Counter(
                "botify_memory_store_evictions", "Users evicted from the memory session store (max_users reached)")
            self._evicted = 0
        self._bounds = self.BUCKETS + (float("inf"),)  # prometheus_client adds +Inf the same way
        self._pending: dict[tuple[str, int], list[float]] = {}  # (route, status) -> seconds observed
        self._scheduled = False

    def observe(self, route: str, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        pending = self._pending.get((route, status))
        if pending is None:
            pending = self._pending[(route, status)] = []
        pending.append(seconds)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no event loop (a direct call): write now
                self.flush()

    def flush(self) -> None:
        """Write what was observed since the last flush into the Prometheus histogram."""
        self._scheduled = False
        if self._store is not None:
            self.users.set(self._store.users)
            self.evictions.inc(self._store.evictions - self._evicted)
            self._evicted = self._store.evictions
        pending, self._pending = self._pending, {}
        for (route, status), seconds in pending.items():
            child = self.duration.labels(route=route, status=str(status))
            if not (hasattr(child, "_sum") and hasattr(child, "_buckets")):
                for x in seconds:  # a prometheus_client without these internals: one at a time
                    child.observe(x)
                continue
            # what Histogram.observe does per value, one write per bucket instead of per value
            child._sum.inc(sum(seconds))
            for bucket, n in collections.Counter(map(functools.partial(bisect.bisect_left, self._bounds),
                                                     seconds)).items():
                child._buckets[bucket].inc(n)


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
    # loopback unless told otherwise (`bentoml serve --host 0.0.0.0` or BENTOML_HOST): a
    # recommender's API and its /metrics are not for the whole network by default
    http={"host": DEFAULT_HOST},
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},  # the event log is the service's record
    # BentoML's metrics label by raw path (a series per user): replaced by RouteMetrics
    metrics={"enabled": False},
    # no spans: even unsampled, OpenTelemetry's middleware cost a third of a trivial request
    tracing={"sample_rate": 0.0, "excluded_urls": ".*"},
    endpoints={"livez": "/livez", "readyz": "/readyz"},
)
@bentoml.asgi_app(app, path="/")
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

            self.core = load(worker=name)
        except Exception as e:
            # BentoML would restart this worker every 10 s forever; a missing artifact or a
            # bad config will not fix itself, so stop the whole server with the reason (and
            # a non-zero exit status: service/instance.py).
            logger.error("Botify cannot start, stopping the server: %s", e)
            instance.report_startup_failure(str(e))
            os.kill(os.getppid(), signal.SIGTERM)
            raise
        app.state.botify = self.core
        app.state.metrics = RouteMetrics(self.core.store)
        # What is loaded by now (BentoML's modules, ours, the catalog) lives as long as the
        # worker: frozen, the cyclic GC never traverses it again (a full pass was a stall of
        # tens to hundreds of ms). Not collected first: that full pass took ~80 ms of every
        # start and found ~30 objects of garbage (issue 10's time to first answer).
        gc.freeze()
        # A request allocates hundreds of short-lived objects: at the default threshold (700)
        # a young collection ran every few requests and an old one every few hundred; rarer
        # and still small (measured: p99 of the trivial route 62 -> 6 ms under wrk -c8).
        gc.set_threshold(50_000, 20, 100)

    async def __is_ready__(self) -> bool:
        """`/readyz`: the event log can be written and the session store answers."""
        return await self.core.ahealthy()

    @bentoml.on_shutdown
    def close(self) -> None:
        app.state.metrics.flush()
        self.core.close()
