"""Botify's service logic without HTTP: config, catalog, recommenders, A/B assignment,
session store and event log, behind the recommender interface of docs/architecture.md.

The BentoML service (`service.service`) and the simulator's in-process agent
(`--factory service.botify:load`) drive the same object, so the same requests give the
same recommendations and the same log either way.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any


from . import artifacts
from . import recommenders as recs
from .assignment import Experiment, parse_experiments
from .catalog import ArtifactError, Catalog, load_catalog
from .config import CONFIG_ENV, DEFAULT_CONFIG, config_path, read_config  # noqa: F401 (this module's API too)
from .errors import RequestError
from .eventlog import EventLog
from .outage import Unavailable
from .sessions import SessionStore, UserState, make_store
from formats.events import LAST, NEXT, LINE as EVENT_LINE  # the log line's schema, shared with training

LOG_DIR_ENV = "BOTIFY_LOG_DIR"  # overrides event_log.dir, e.g. for a Bento served from the store
MAX_USER_DIGITS = 18  # fits an int64; the course's users are 0..U-1
# `{"track": <int>, "time": <0 or 1, optionally with decimals>}` with JSON's whitespace: what the
# simulator, wrk and any json.dumps send; anything else (other order, exponents, extra keys) takes json.loads
_WS = rb"[ \t\n\r]*"
_EVENT = re.compile(_WS + rb"\{" + _WS + rb'"track"' + _WS + b":" + _WS + rb"(0|[1-9][0-9]{0,17})" + _WS + b"," + _WS
                    + rb'"time"' + _WS + b":" + _WS + rb"([01](?:\.[0-9]{1,20})?)" + _WS + rb"\}" + _WS)
ASSIGNMENT_CACHE = 65_536  # users whose arms are kept: bounded, cleared when full
ARTIFACT_KEYS = ("i2i", "lists")  # a recommender's option that names a model's artifact


class Botify:
    """Serves one request at a time per process; several processes share state through the store."""

    def __init__(self, catalog: Catalog, recommenders: dict[str, recs.Recommender],
                 experiments: list[Experiment], store: SessionStore, log: EventLog | None,
                 seed: int = 42, history: int = 10, max_body_bytes: int = 4096,
                 models: dict[str, dict] | None = None) -> None:
        self.catalog = catalog
        self.recommenders = recommenders
        self.experiments = experiments
        self.store = store
        self.log = log
        self.seed = seed
        self.history = history
        self.max_body_bytes = max_body_bytes
        self.models = models or {}  # recommender -> what its artifact is (GET /: name, version, run id)
        self.n_tracks = len(catalog)
        # the routing experiment's arms resolved to recommender objects once
        self._routes = [recommenders[r] for r in experiments[0].recommenders]
        self._arms_json: dict[tuple[int, ...], str] = {}
        self._assigned: dict[int, tuple[int, str]] = {}

    # --- the recommender interface (docs/architecture.md) ---------------------------------
    def recommend_next(self, user: int, prev_track: int, prev_time: float, started: float | None = None) -> int:
        """The next track. Order (docs/architecture.md): read the state, compute, write the log
        line, then record the listen; a failure at any step raises `Unavailable` (503) with
        nothing after it done, so the state never holds a listen the log lacks."""
        started = time.perf_counter() if started is None else started
        # in-process callers may pass numpy scalars: the log and the store want plain numbers
        user, prev_track, prev_time = int(user), int(prev_track), float(prev_time)
        track, tracks, times, history = self._next(user, prev_track, prev_time, self.store.load(user), started)
        self.store.add_listen(user, tracks, times, history, prev_track, prev_time)
        return track

    async def recommend_next_async(self, user: int, prev_track: int, prev_time: float, started: float) -> int:
        """`recommend_next` for the service's event loop: a store with an asyncio client is
        awaited (a slow Redis holds this request only); the memory store is called directly."""
        store = self.store
        if not store.is_async:
            return self.recommend_next(user, prev_track, prev_time, started)
        track, tracks, times, history = self._next(user, prev_track, prev_time, await store.aload(user), started)
        await store.aadd_listen(user, tracks, times, history, prev_track, prev_time)
        return track

    def _next(self, user: int, prev_track: int, prev_time: float, state: tuple, started: float) -> tuple:
        """Compute the recommendation from the loaded state (and the request's seq) and write its
        log line: (track, and the state the request leads to: tracks, times, history)."""
        # tuples in and out of the store: no per-listen copies (the memory store keeps these objects)
        tracks, times, history, seq = state
        tracks += (prev_track,)
        times += (prev_time,)
        history = (history + ((prev_track, prev_time),))[-self.history:]
        pos = len(tracks)
        rng = (self.seed, user, pos, prev_track)  # ctx.rng's seed: their MurmurHash3, if a recommender draws
        route, experiments = self._assignment(user)
        ctx = recs.Context(user, tracks, times, history, rng)
        track = int(self._routes[route].recommend(ctx))
        self._log(NEXT, user, seq, prev_track, prev_time, started, track, experiments, ctx.propensity)
        return track, tracks, times, history

    def end_session(self, user: int, last_track: int, last_time: float, started: float | None = None) -> None:
        started = time.perf_counter() if started is None else started
        user, last_track, last_time = int(user), int(last_track), float(last_time)
        history = self._last(user, last_track, last_time, self.store.load(user), started)
        self.store.end_session(user, history, last_track, last_time)

    async def end_session_async(self, user: int, last_track: int, last_time: float, started: float) -> None:
        store = self.store
        if not store.is_async:
            return self.end_session(user, last_track, last_time, started)
        history = self._last(user, last_track, last_time, await store.aload(user), started)
        await store.aend_session(user, history, last_track, last_time)

    def _last(self, user: int, last_track: int, last_time: float, state: tuple, started: float) -> tuple:
        self._log(LAST, user, state[3], last_track, last_time, started, None, self._assignment(user)[1])
        return (state[2] + ((last_track, last_time),))[-self.history:]

    def _assignment(self, user: int) -> tuple[int, str]:
        """(the routing experiment's arm index, every experiment's arm as the log's JSON) of a user.

        Deterministic, so kept for recent users: a request otherwise hashed the user once to
        route it and once per experiment to log it. Bounded: cleared when it grows large."""
        got = self._assigned.get(user)
        if got is None:
            arms = tuple(e.arm_index(user) for e in self.experiments)
            experiments = self._arms_json.get(arms)
            if experiments is None:
                experiments = self._arms_json[arms] = json.dumps(
                    {e.name: e.arms[i] for e, i in zip(self.experiments, arms)}, separators=(",", ":"))
            if len(self._assigned) >= ASSIGNMENT_CACHE:
                self._assigned.clear()
            got = self._assigned[user] = (arms[0], experiments)
        return got

    def _log(self, message: str, user: int, seq: int, track: int, time_: float, started: float, rec: int | None,
             experiments: str, propensity: float | None = None) -> None:
        """One line, whole, before the state changes; raises `Unavailable` with nothing written.
        `seq`: drawn by the store with the state this request read (the reader orders by it)."""
        if self.log is None:
            return
        # the fixed shape formatted directly: json.dumps of a dict is a visible share of a request
        self.log.write_line(
            EVENT_LINE % (
                message, time.time() * 1000, user, seq, track, time_, time.perf_counter() - started,
                "null" if rec is None else "%d" % rec, "null" if propensity is None else "%r" % float(propensity),
                experiments))

    # --- what the HTTP layer needs, without HTTP ------------------------------------------
    def arms(self, user: int) -> dict[str, str]:
        return {e.name: e.arm(user) for e in self.experiments}

    def track_json(self, track: str) -> bytes | None:
        """The catalog record of `track` (a path segment), or None when unknown."""
        if not (track.isascii() and track.isdigit()) or len(track) > MAX_USER_DIGITS:
            return None
        t = int(track)
        # made per request (a rare route): precomputing every track's slowed every start-up
        return json.dumps(self.catalog.record(t)).encode() if t < self.n_tracks else None

    def parse_user(self, user: str) -> int:
        if not (user.isascii() and user.isdigit()) or len(user) > MAX_USER_DIGITS:
            raise RequestError(f"user must be a non-negative integer, got {user[:40]!r}")
        return int(user)

    def parse_event(self, body: bytes) -> tuple[int, float]:
        """`{"track": int, "time": float}` checked against the catalog; raises RequestError."""
        if len(body) > self.max_body_bytes:
            raise RequestError(f"body larger than {self.max_body_bytes} bytes", 413)
        m = _EVENT.fullmatch(body)
        if m is not None:  # the shape clients send, valid JSON by construction: no json.loads, no dict
            track, t = int(m[1]), float(m[2])  # json.loads makes its floats with float() of the same text
            if track < self.n_tracks and t <= 1.0:
                return track, t
            # out of range: the general path below words the refusal
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError(f"malformed JSON body: {e}") from None
        except RecursionError:  # ~1,000 nested arrays fit in a small body
            raise RequestError("malformed JSON body: nested too deeply") from None
        if not isinstance(data, dict):
            raise RequestError('body must be a JSON object {"track": int, "time": float}')
        missing = [k for k in ("track", "time") if k not in data]
        if missing:
            raise RequestError(f"missing field(s): {', '.join(missing)}")
        track, t = data["track"], data["time"]
        if type(track) is not int:
            raise RequestError(f"track must be an integer, got {_shown(track)}")
        if not 0 <= track < self.n_tracks:
            raise RequestError(f"track {track} is not in the catalog (0..{self.n_tracks - 1})", 422)
        if type(t) not in (int, float):
            raise RequestError(f"time must be a number, got {_shown(t)}")
        if not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise RequestError(f"time must be within [0, 1], got {t}", 422)
        return track, float(t)

    def healthy(self) -> bool:
        """Whether a request can be served whole now (the log can be written): for `/readyz`."""
        return self.log is None or self.log.healthy()

    async def ahealthy(self) -> bool:
        """`healthy`, and the session store answers (a PING bounded by its timeout)."""
        log_ok = self.healthy()
        return (await self.store.ahealthy() if self.store.is_async else True) and log_ok

    def status(self) -> dict[str, Any]:
        return {"status": "alive", "message": "Botify: POST /next/{user}, POST /last/{user}, GET /track/{track}",
                "tracks": self.n_tracks, "experiments": [e.name for e in self.experiments],
                "models": self.models}

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        self.store.close()


def _shown(value: Any) -> str:
    """A refused value, short, for an error message (json.dumps of a deeply nested one recurses)."""
    try:
        return json.dumps(value)[:40]
    except RecursionError:
        return "a value nested too deeply"


def load(config: str | Path | None = None, *, worker: str | None = None, root: str | Path | None = None) -> Botify:
    """The whole service logic from a config file (relative paths from `root`, default: cwd).

    `worker` names this process's event log file; default: its pid.
    """
    path = config_path(str(config) if config else None)
    cfg = read_config(path)
    root = Path(root) if root else Path.cwd()
    cat_path = Path(cfg["catalog"])
    catalog = load_catalog(cat_path if cat_path.is_absolute() else root / cat_path)
    specs = cfg["recommenders"]
    if not isinstance(specs, dict) or not specs:
        raise ValueError("config: 'recommenders' must map names to {kind: ...}")
    experiments = parse_experiments(cfg["experiments"], set(specs))
    used = {r for e in experiments for r in e.recommenders}
    # only what an experiment serves is loaded: an unused entry needs no artifact
    tables = artifacts.Tables(root, len(catalog))  # arms naming one model share its table
    built = {name: recs.build(name, spec, catalog, root, tables, config=path)
             for name, spec in specs.items() if name in used}
    # each served model traced back to its registry version (GET /)
    models = {name: tables.describe(str(spec[key])) for name, spec in specs.items() if name in used
              for key in ARTIFACT_KEYS if key in spec}
    for name in used:   # and the values its recommender took from the policy learned beside the lists
        if learned := recs.learned(specs[name], tables):
            models.setdefault(name, {})["learned"] = learned
    history = max([int(s.get("history", 10)) for s in specs.values() if isinstance(s, dict)] + [10])
    log_cfg = cfg.get("event_log")
    log = None
    if log_cfg is not False:
        log_cfg = dict(log_cfg or {})
        log_dir = Path(os.environ.get(LOG_DIR_ENV) or log_cfg.pop("dir", "logs/service"))
        log_cfg.pop("dir", None)
        log = EventLog(log_dir if log_dir.is_absolute() else root / log_dir, worker or str(os.getpid()),
                       max_bytes=int(log_cfg.pop("max_bytes", 100 * 2**20)), backups=int(log_cfg.pop("backups", 10)))
        if log_cfg:
            raise ValueError(f"config: event_log: unknown options {sorted(log_cfg)}")
    return Botify(catalog, built, experiments, make_store(cfg.get("session_store"), history=history), log,
                  seed=int(cfg.get("seed", 42)), history=history,
                  max_body_bytes=int(cfg.get("max_body_bytes", 4096)), models=models)


__all__ = ["ArtifactError", "Botify", "RequestError", "Unavailable", "load", "read_config", "UserState"]
