"""Where each listening session's state lives: behind one interface, so that a session
served by several workers (Redis) gets the same recommendations as with one (memory).

The state of a user is two lists of `[track, time]`: this session's listens (cleared by
`/last`, expiring after `ttl_seconds` of silence when a session is abandoned), and the
user's recent listens across sessions (the last `history` ones, for I2I-with-history;
kept `history_ttl_seconds`).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

REDIS_URL_ENV = "BOTIFY_REDIS_URL"


@dataclass(slots=True)
class UserState:
    session: list[list] = field(default_factory=list)  # [[track, time], ...] this session
    history: list[list] = field(default_factory=list)  # [[track, time], ...] across sessions


Tracks = tuple[int, ...]
Times = tuple[float, ...]
Listens = tuple[tuple[int, float], ...]


class SessionStore(Protocol):
    """`load`/`save` are what a request uses: immutable tuples, so the memory store hands out
    and keeps the very objects it holds (no copy per request; a recommender cannot change them).
    `get`/`put` are the same state as lists of `[track, time]`, for tools and tests."""

    def load(self, user: int) -> tuple[Tracks, Times, Listens]: ...
    def save(self, user: int, tracks: Tracks, times: Times, history: Listens) -> None: ...
    def get(self, user: int) -> UserState: ...
    def put(self, user: int, state: UserState) -> None: ...
    def close(self) -> None: ...


class MemoryStore:
    """One process's dictionary: the default for one worker and the in-process simulator."""

    def __init__(self, ttl_seconds: float = 1800, history_ttl_seconds: float = 7 * 86400,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.history_ttl = history_ttl_seconds
        self.clock = clock
        # insertion order = expiry order (each put moves its user to the end, all with one
        # ttl), so expired users are always at the front: dropped a few per put, no sweep stall.
        # Values are tuples of numbers, which the cyclic GC untracks: lists of every user's
        # session would be traversed by each full collection, a growing latency stall.
        self.sessions: dict[int, tuple[float, Tracks, Times]] = {}
        self.histories: dict[int, tuple[float, Listens]] = {}

    def load(self, user: int) -> tuple[Tracks, Times, Listens]:
        now = self.clock()
        s = self.sessions.get(user)
        h = self.histories.get(user)
        if s is None or s[0] <= now:
            return (), (), h[1] if h is not None and h[0] > now else ()
        return s[1], s[2], h[1] if h is not None and h[0] > now else ()

    def save(self, user: int, tracks: Tracks, times: Times, history: Listens) -> None:
        now = self.clock()
        self.sessions.pop(user, None)
        if tracks:
            self.sessions[user] = (now + self.ttl, tracks, times)
        self.histories.pop(user, None)
        self.histories[user] = (now + self.history_ttl, history)
        _drop_expired(self.sessions, now)
        _drop_expired(self.histories, now)

    def get(self, user: int) -> UserState:
        tracks, times, history = self.load(user)
        return UserState(session=[[t, x] for t, x in zip(tracks, times)], history=[list(p) for p in history])

    def put(self, user: int, state: UserState) -> None:
        self.save(user, tuple(t for t, _ in state.session), tuple(x for _, x in state.session),
                  tuple(map(tuple, state.history)))

    def close(self) -> None:
        self.sessions.clear()
        self.histories.clear()


def _drop_expired(table: dict[int, tuple], now: float, at_most: int = 4) -> None:
    for _ in range(at_most):  # more expire per put than arrive: the table cannot grow stale
        user = next(iter(table), None)
        if user is None or table[user][0] > now:
            return
        del table[user]


class RedisStore:
    """Redis: any number of workers or replicas see the same sessions.

    One key per user, `<prefix>u:<user>` = compact JSON `{"t": last request (epoch s),
    "s": session, "h": history}`: one GET and one SET per request (redis-py's pipelines
    cost more CPU than the round trip they save). The key expires `history_ttl_seconds`
    after the user's last request; the session inside it counts as abandoned, and is
    dropped, once `ttl_seconds` have passed since `t`.

    Calls are synchronous, inside the worker's event loop: a worker is CPU-bound on its
    one request at a time, so throughput scales with workers (benchmarks/service.py).
    """

    def __init__(self, url: str, ttl_seconds: float = 1800, history_ttl_seconds: float = 7 * 86400,
                 prefix: str = "botify:", clock: Callable[[], float] = time.time) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.client.ping()  # fail at start-up, not on the first request
        self.ttl = ttl_seconds
        self.key_ttl = max(1, int(max(ttl_seconds, history_ttl_seconds)))
        self.prefix = prefix
        self.clock = clock

    def key(self, user: int) -> str:
        return f"{self.prefix}u:{user}"

    def load(self, user: int) -> tuple[Tracks, Times, Listens]:
        state = self.get(user)
        return (tuple(p[0] for p in state.session), tuple(p[1] for p in state.session),
                tuple(map(tuple, state.history)))

    def save(self, user: int, tracks: Tracks, times: Times, history: Listens) -> None:
        self.put(user, UserState(session=[[t, x] for t, x in zip(tracks, times)], history=list(history)))

    def get(self, user: int) -> UserState:
        raw = self.client.get(self.key(user))
        if not raw:
            return UserState()
        d = json.loads(raw)
        fresh = d["t"] + self.ttl > self.clock()
        return UserState(session=d["s"] if fresh else [], history=d["h"])

    def put(self, user: int, state: UserState) -> None:
        value = '{"t":%r,"s":%s,"h":%s}' % (self.clock(), json.dumps(state.session, separators=(",", ":")),
                                           json.dumps(state.history, separators=(",", ":")))
        self.client.set(self.key(user), value, ex=self.key_ttl)

    def close(self) -> None:
        self.client.close()


def make_store(spec: dict | None) -> SessionStore:
    """From the config's `session_store`; env BOTIFY_REDIS_URL overrides its url (and selects Redis)."""
    spec = dict(spec or {"kind": "memory"})
    env_url = os.environ.get(REDIS_URL_ENV)
    if env_url:
        spec["kind"], spec["url"] = "redis", env_url
    kind = spec.pop("kind", "memory")
    ttl = float(spec.pop("ttl_seconds", 1800))
    history_ttl = float(spec.pop("history_ttl_seconds", 7 * 86400))
    if kind == "memory":
        if spec:
            raise ValueError(f"session_store (memory): unknown options {sorted(spec)}")
        return MemoryStore(ttl, history_ttl)
    if kind == "redis":
        url = spec.pop("url", None)
        prefix = spec.pop("prefix", "botify:")
        if not url:
            raise ValueError(f"session_store (redis): needs 'url' or env {REDIS_URL_ENV}")
        if spec:
            raise ValueError(f"session_store (redis): unknown options {sorted(spec)}")
        return RedisStore(url, ttl, history_ttl, prefix)
    raise ValueError(f"session_store: kind must be 'memory' or 'redis', not {kind!r}")
