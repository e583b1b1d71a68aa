"""The session stores: the same behaviour in memory and in a real Redis."""
from __future__ import annotations

import time

import pytest

from service.sessions import MemoryStore, RedisStore, UserState, make_store


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        s = MemoryStore(ttl_seconds=60)
    else:
        url = request.getfixturevalue("redis_url")
        s = RedisStore(url, ttl_seconds=60, prefix=f"test:{time.monotonic_ns()}:")
    yield s
    s.close()


def test_roundtrip_and_clear(store):
    assert store.get(1) == UserState()
    store.put(1, UserState(session=[[3, 1.0], [4, 0.5]], history=[[3, 1.0], [4, 0.5]]))
    assert store.get(1) == UserState(session=[[3, 1.0], [4, 0.5]], history=[[3, 1.0], [4, 0.5]])
    assert store.get(2) == UserState()
    store.put(1, UserState(session=[], history=[[3, 1.0]]))  # /last: session gone, history kept
    assert store.get(1) == UserState(session=[], history=[[3, 1.0]])


def test_memory_sessions_expire():
    clock = Clock()
    s = MemoryStore(ttl_seconds=10, history_ttl_seconds=100, clock=clock)
    s.put(1, UserState(session=[[3, 1.0]], history=[[3, 1.0]]))
    clock.now = 9.9
    assert s.get(1).session == [[3, 1.0]]
    clock.now = 10.1
    assert s.get(1) == UserState(session=[], history=[[3, 1.0]])
    clock.now = 200
    for u in range(2, 6):
        s.put(u, UserState(session=[[1, 1.0]]))
    assert 1 not in s.sessions and 1 not in s.histories  # dropped, not just hidden
    s.put(2, UserState(session=[[1, 1.0]]))  # refreshed users move to the back
    assert list(s.sessions) == [3, 4, 5, 2]
    clock.now = 210.5
    s.put(6, UserState(session=[[1, 1.0]]))
    assert list(s.sessions) == [6] and list(s.histories) == [3, 4, 5, 2, 6]


def test_redis_sessions_expire(redis_url):
    clock = Clock()
    s = RedisStore(redis_url, ttl_seconds=10, history_ttl_seconds=100, prefix="test:expire:", clock=clock)
    s.put(1, UserState(session=[[3, 1.0]], history=[[3, 1.0]]))
    assert 99 <= s.client.ttl("test:expire:u:1") <= 100  # the key outlives the session: history
    clock.now = 9.9
    assert s.get(1).session == [[3, 1.0]]
    clock.now = 10.1
    assert s.get(1) == UserState(session=[], history=[[3, 1.0]])
    short = RedisStore(redis_url, ttl_seconds=1, history_ttl_seconds=1, prefix="test:gone:")
    short.put(1, UserState(session=[[3, 1.0]], history=[[3, 1.0]]))
    time.sleep(1.6)
    assert short.get(1) == UserState() and not short.client.exists("test:gone:u:1")  # Redis dropped it


def test_make_store_env_selects_redis(redis_url, monkeypatch):
    monkeypatch.setenv("BOTIFY_REDIS_URL", redis_url)
    assert isinstance(make_store({"kind": "memory"}), RedisStore)
    monkeypatch.delenv("BOTIFY_REDIS_URL")
    assert isinstance(make_store(None), MemoryStore)
    with pytest.raises(ValueError, match="kind"):
        make_store({"kind": "disk"})
