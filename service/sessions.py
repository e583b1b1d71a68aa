"""Where each listening session's state lives: behind one interface, so that a session
served by several workers (Redis) gets the same recommendations as with one (memory).

The state of a user is two lists of `[track, time]`: this session's listens (cleared by
`/last`, expiring after `ttl_seconds` of silence when a session is abandoned), and the
user's recent listens across sessions (the last `history` ones, for I2I-with-history;
kept `history_ttl_seconds`).

A request reads the state (`load`), computes its answer, writes its log line, and only
then records its listen (`add_listen` for /next, `end_session` for /last). Recording is
an atomic append to whatever the state is by then, never a write-back of what was read:
concurrent requests for one user (several workers, or awaits in one) lose no listen.
A store that cannot answer raises `Unavailable` (503); nothing is retried, since a retried
append that had in fact been applied would record a listen twice.

`load` also draws the request's `seq`, in the same atomic step as the read: the store's
counter, which only goes up (each draw is the larger of the last one + 1 and the store's
clock in microseconds), so a user's requests, on any workers or replicas, carry increasing
seqs in the order their state was read. The log's reader orders a user's events by it. A
request that fails after drawing leaves a gap, never a duplicate; the clock floor keeps
the counter going up when it is lost (a memory store's restart, Redis losing its data).
"""
from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .outage import Outage, Unavailable

REDIS_URL_ENV = "BOTIFY_REDIS_URL"
DEFAULT_MAX_USERS = 200_000  # memory store: bounds its memory (per-user size: docs/results.md)


@dataclass(slots=True)
class UserState:
    session: list[list] = field(default_factory=list)  # [[track, time], ...] this session
    history: list[list] = field(default_factory=list)  # [[track, time], ...] across sessions


Tracks = tuple[int, ...]
Times = tuple[float, ...]
Listens = tuple[tuple[int, float], ...]


class SessionStore(Protocol):
    """`load` and the two recording calls are what a request uses, with immutable tuples (the
    memory store hands out and keeps the very objects it holds: no copy per request).
    `load(user)` is (tracks, times, history, seq): the state and the request's seq.

    `add_listen(user, tracks, times, history, track, time)`: the request that loaded the state
    added the listen (track, time); (tracks, times, history) is the state it computed from what
    it loaded. A store whose load-to-record is atomic (memory: no await in between) keeps that
    state; one shared by processes (Redis) appends the listen to its current state atomically.
    `end_session(user, history, track, time)` likewise for /last: session cleared, listen kept
    in the history. `is_async`: the store also has `aload`/`aadd_listen`/`aend_session`/
    `ahealthy`, which the service awaits so a slow store never blocks its event loop.
    `get`/`put` are the state as lists of `[track, time]`, for tools and tests."""

    is_async: bool

    def load(self, user: int) -> tuple[Tracks, Times, Listens, int]: ...
    def add_listen(self, user: int, tracks: Tracks, times: Times, history: Listens, track: int,
                   time: float) -> None: ...
    def end_session(self, user: int, history: Listens, track: int, time: float) -> None: ...
    def save(self, user: int, tracks: Tracks, times: Times, history: Listens) -> None: ...
    def get(self, user: int) -> UserState: ...
    def put(self, user: int, state: UserState) -> None: ...
    def close(self) -> None: ...


class MemoryStore:
    """One process's tables: the default for one worker and the in-process simulator.

    Bounded: at most `max_users` users (the least recently seen are evicted first; `users`
    and `evictions` are what the service reports as metrics)."""

    is_async = False

    def __init__(self, ttl_seconds: float = 1800, history_ttl_seconds: float = 7 * 86400,
                 clock: Callable[[], float] = time.monotonic, max_users: int = DEFAULT_MAX_USERS) -> None:
        if max_users < 1:
            raise ValueError(f"session_store (memory): max_users must be >= 1, got {max_users}")
        self.ttl = ttl_seconds
        self.history_ttl = history_ttl_seconds
        self.clock = clock
        self.max_users = max_users
        self.evictions = 0
        # Ordered by last request (each save moves its user to the end, all with one ttl), so
        # expired and least recently seen users are at the front: dropped a few per save, no
        # sweep stall. OrderedDict, not dict: a dict's first key is found by scanning past
        # every slot deleted before it, a cost that grows with the evictions.
        # Values are tuples of numbers, which the cyclic GC untracks: lists of every user's
        # session would be traversed by each full collection, a growing latency stall.
        self.sessions: OrderedDict[int, tuple[float, Tracks, Times]] = OrderedDict()
        self.histories: OrderedDict[int, tuple[float, Listens]] = OrderedDict()
        self.seq = 0  # the last seq drawn (one counter for all users: no table to bound)

    @property
    def users(self) -> int:
        return len(self.histories)

    def load(self, user: int) -> tuple[Tracks, Times, Listens, int]:
        # the seq: nothing runs between this read and the request's record (no await)
        seq = time.time_ns() // 1000
        if seq <= self.seq:
            seq = self.seq + 1
        self.seq = seq
        tracks, times, history = self._state(user)
        return tracks, times, history, seq

    def _state(self, user: int) -> tuple[Tracks, Times, Listens]:
        now = self.clock()
        s = self.sessions.get(user)
        h = self.histories.get(user)
        if s is None or s[0] <= now:
            return (), (), h[1] if h is not None and h[0] > now else ()
        return s[1], s[2], h[1] if h is not None and h[0] > now else ()

    def add_listen(self, user: int, tracks: Tracks, times: Times, history: Listens, track: int, time: float) -> None:
        self.save(user, tracks, times, history)

    def end_session(self, user: int, history: Listens, track: int, time: float) -> None:
        self.save(user, (), (), history)

    def save(self, user: int, tracks: Tracks, times: Times, history: Listens) -> None:
        now = self.clock()
        sessions, histories = self.sessions, self.histories
        if tracks:
            sessions[user] = (now + self.ttl, tracks, times)
            sessions.move_to_end(user)
        else:
            sessions.pop(user, None)
        histories[user] = (now + self.history_ttl, history)
        histories.move_to_end(user)
        _drop_expired(sessions, now)
        _drop_expired(histories, now)
        while len(histories) > self.max_users:  # the least recently seen user goes
            gone, _ = histories.popitem(last=False)
            sessions.pop(gone, None)
            self.evictions += 1

    def get(self, user: int) -> UserState:
        tracks, times, history = self._state(user)
        return UserState(session=[[t, x] for t, x in zip(tracks, times)], history=[list(p) for p in history])

    def put(self, user: int, state: UserState) -> None:
        self.save(user, tuple(t for t, _ in state.session), tuple(x for _, x in state.session),
                  tuple(map(tuple, state.history)))

    def close(self) -> None:
        self.sessions.clear()
        self.histories.clear()


def _drop_expired(table: OrderedDict[int, tuple], now: float, at_most: int = 4) -> None:
    for _ in range(at_most):  # more expire per save than arrive: the table cannot grow stale
        user = next(iter(table), None)
        if user is None or table[user][0] > now:
            return
        del table[user]


# Append one listen to a user's state, atomically (Redis runs a script alone). The value is
# the JSON of RedisStore's docstring; entries are spliced as text, never parsed into Lua
# numbers, so times keep every digit Python wrote (cjson would round them to 14).
# KEYS[1] the user's key; ARGV: now, session ttl s, key ttl s, '[track,time]', history length,
# '1' to end the session (/last) or '0' to add to it (/next).
APPEND_LUA = """
local now = tonumber(ARGV[1])
local s, h = '', ''
local v = redis.call('GET', KEYS[1])
if v then
  local t, s0, h0 = string.match(v, '^{"t":([^,]+),"s":%[(.*)%],"h":%[(.*)%]}$')
  if t then
    if tonumber(t) + tonumber(ARGV[2]) > now then s = s0 end
    h = h0
  end
end
local e = ARGV[4]
if ARGV[6] == '1' then s = '' elseif s == '' then s = e else s = s .. ',' .. e end
local items = {}
for item in string.gmatch(h, '%[[^%]]*%]') do items[#items + 1] = item end
items[#items + 1] = e
h = table.concat(items, ',', math.max(1, #items - tonumber(ARGV[5]) + 1), #items)
redis.call('SET', KEYS[1], '{"t":' .. ARGV[1] .. ',"s":[' .. s .. '],"h":[' .. h .. ']}', 'EX', ARGV[3])
return 1
"""


# Read a user's state and draw the request's seq, atomically. KEYS[1] the user's key, KEYS[2]
# the store's seq key. The seq is the larger of the last one + 1 and Redis's own clock in
# microseconds (one clock for every replica); both below 2^53, so exact in Lua's doubles,
# and returned as text. Returns {seq, the user's value or nil}.
LOAD_LUA = """
local v = redis.call('GET', KEYS[1])
local t = redis.call('TIME')
local q = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if last >= q then q = last + 1 end
q = string.format('%.0f', q)
redis.call('SET', KEYS[2], q)
return {q, v}
"""


class RedisStore:
    """Redis: any number of workers or replicas see the same sessions.

    One key per user, `<prefix>u:<user>` = compact JSON `{"t": last request (epoch s),
    "s": session, "h": history}`: one script to load (`LOAD_LUA`: the value and the
    request's seq, drawn from the key `<prefix>seq`), one (`APPEND_LUA`) to record. The
    key expires `history_ttl_seconds` after the user's last request (every write sets it);
    the session inside it counts as abandoned, and is dropped, once `ttl_seconds` have
    passed since `t`.

    The service uses the asyncio client, so a slow or frozen Redis holds only the requests
    that need it, each for at most `timeout_seconds`, never the worker's event loop (`/`,
    `/livez`, `/track` keep answering). The synchronous client serves in-process use and tools.
    """

    is_async = True

    def __init__(self, url: str, ttl_seconds: float = 1800, history_ttl_seconds: float = 7 * 86400,
                 prefix: str = "botify:", clock: Callable[[], float] = time.time, history: int = 10,
                 timeout_seconds: float = 1.0) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors = (redis.RedisError, OSError)
        self.url = url
        # no retries: redis-py 8 retries 10 times by default, minutes of stall on a frozen Redis;
        # and a retried append that had been applied would record its listen twice
        self.options = dict(socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds)
        self.client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **self.options)
        self._aclient = None  # made in the serving event loop, on first use
        self._append = self.client.register_script(APPEND_LUA)
        self._load = self.client.register_script(LOAD_LUA)
        self._aappend = self._aload = None
        self.outage = Outage(f"session store (Redis {self.client.connection_pool.connection_kwargs.get('host', url)}:"
                             f"{self.client.connection_pool.connection_kwargs.get('port', '')})")
        self.ttl = ttl_seconds
        self.key_ttl = max(1, int(max(ttl_seconds, history_ttl_seconds)))
        self.prefix = prefix
        self.seq_key = f"{prefix}seq"
        self.clock = clock
        self.history = history
        try:  # an unreachable Redis is an outage, not fatal: a worker restarted during one must come up
            self.client.ping()
        except (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError, redis.ResponseError):
            raise  # it answered and refused us: wrong credentials or config do not fix themselves
        except self._errors as e:
            self.outage.failed(f"{e} (at start-up; /readyz fails until it answers)")

    def key(self, user: int) -> str:
        return f"{self.prefix}u:{user}"

    # --- what a request uses --------------------------------------------------------------
    def _parse(self, raw: bytes | None) -> tuple[Tracks, Times, Listens]:
        if not raw:
            return (), (), ()
        d = json.loads(raw)
        session = d["s"] if d["t"] + self.ttl > self.clock() else ()
        return (tuple(p[0] for p in session), tuple(p[1] for p in session), tuple(map(tuple, d["h"])))

    def _loaded(self, reply: list) -> tuple[Tracks, Times, Listens, int]:
        if self.outage.down_since is not None:
            self.outage.ok()
        return (*self._parse(reply[1]), int(reply[0]))

    def _args(self, track: int, time_: float, end: bool) -> list:
        return [repr(self.clock()), repr(self.ttl), self.key_ttl, "[%d,%r]" % (track, time_), self.history,
                "1" if end else "0"]

    def _failed(self, e: Exception) -> Unavailable:
        self.outage.failed(e)
        return Unavailable(f"session store unavailable ({type(e).__name__}: {str(e)[:200]})")

    def load(self, user: int) -> tuple[Tracks, Times, Listens, int]:
        try:
            reply = self._load(keys=[self.key(user), self.seq_key])
        except self._errors as e:
            raise self._failed(e) from None
        return self._loaded(reply)

    def add_listen(self, user: int, tracks: Tracks, times: Times, history: Listens, track: int, time: float) -> None:
        self._record(user, track, time, False)

    def end_session(self, user: int, history: Listens, track: int, time: float) -> None:
        self._record(user, track, time, True)

    def _record(self, user: int, track: int, time_: float, end: bool) -> None:
        try:
            self._append(keys=[self.key(user)], args=self._args(track, time_, end))
        except self._errors as e:
            raise self._failed(e) from None

    def _async(self):
        if self._aclient is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._aclient = redis.asyncio.Redis.from_url(self.url, retry=Retry(NoBackoff(), 0), **self.options)
            self._aappend = self._aclient.register_script(APPEND_LUA)
            self._aload = self._aclient.register_script(LOAD_LUA)
        return self._aclient

    async def aload(self, user: int) -> tuple[Tracks, Times, Listens, int]:
        self._aclient or self._async()
        try:
            reply = await self._aload(keys=[self.key(user), self.seq_key])
        except self._errors as e:
            raise self._failed(e) from None
        return self._loaded(reply)

    async def aadd_listen(self, user: int, tracks: Tracks, times: Times, history: Listens, track: int,
                          time: float) -> None:
        await self._arecord(user, track, time, False)

    async def aend_session(self, user: int, history: Listens, track: int, time: float) -> None:
        await self._arecord(user, track, time, True)

    async def _arecord(self, user: int, track: int, time_: float, end: bool) -> None:
        self._aclient or self._async()
        try:
            await self._aappend(keys=[self.key(user)], args=self._args(track, time_, end))
        except self._errors as e:
            raise self._failed(e) from None

    async def ahealthy(self) -> bool:
        """One PING (bounded by the timeout): what `/readyz` reports; logs the outage's start or end."""
        try:
            await self._async().ping()
        except self._errors as e:
            self.outage.failed(e)
            return False
        self.outage.ok()
        return True

    # --- tools and tests ------------------------------------------------------------------
    def save(self, user: int, tracks: Tracks, times: Times, history: Listens) -> None:
        self.put(user, UserState(session=[[t, x] for t, x in zip(tracks, times)], history=list(history)))

    def get(self, user: int) -> UserState:
        tracks, times, history = self._parse(self.client.get(self.key(user)))
        return UserState(session=[[t, x] for t, x in zip(tracks, times)], history=[list(p) for p in history])

    def put(self, user: int, state: UserState) -> None:
        value = '{"t":%r,"s":%s,"h":%s}' % (self.clock(), json.dumps(state.session, separators=(",", ":")),
                                           json.dumps(state.history, separators=(",", ":")))
        self.client.set(self.key(user), value, ex=self.key_ttl)

    def close(self) -> None:
        self.client.close()
        # the asyncio client's connections belong to the serving loop, which is closing: let them go


def make_store(spec: dict | None, history: int = 10) -> SessionStore:
    """From the config's `session_store`; env BOTIFY_REDIS_URL overrides its url (and selects Redis).
    `history`: how many recent listens a user's history keeps."""
    spec = dict(spec or {"kind": "memory"})
    env_url = os.environ.get(REDIS_URL_ENV)
    if env_url:
        spec["kind"], spec["url"] = "redis", env_url
        spec.pop("max_users", None)
    kind = spec.pop("kind", "memory")
    ttl = float(spec.pop("ttl_seconds", 1800))
    history_ttl = float(spec.pop("history_ttl_seconds", 7 * 86400))
    if kind == "memory":
        max_users = int(spec.pop("max_users", DEFAULT_MAX_USERS))
        if spec:
            raise ValueError(f"session_store (memory): unknown options {sorted(spec)}")
        return MemoryStore(ttl, history_ttl, max_users=max_users)
    if kind == "redis":
        url = spec.pop("url", None)
        prefix = spec.pop("prefix", "botify:")
        timeout = float(spec.pop("timeout_seconds", 1.0))
        if not url:
            raise ValueError(f"session_store (redis): needs 'url' or env {REDIS_URL_ENV}")
        if spec:
            raise ValueError(f"session_store (redis): unknown options {sorted(spec)}")
        return RedisStore(url, ttl, history_ttl, prefix, history=history, timeout_seconds=timeout)
    raise ValueError(f"session_store: kind must be 'memory' or 'redis', not {kind!r}")
