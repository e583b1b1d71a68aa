"""The session stores: the same behaviour in memory and in a real Redis."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.launch import free_port
from service.outage import Unavailable
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


def test_recording_appends_to_the_current_state(store):
    """add_listen/end_session as a request makes them: the memory store keeps what the request
    computed, Redis appends the listen to its state: both give the same state."""
    store.history = 3
    tracks, times, history, _ = store.load(5)
    for i, (t, x) in enumerate([(3, 1.0), (4, 0.123456789012345678), (5, 0.5), (6, 1e-7)]):
        tracks, times, history = tracks + (t,), times + (x,), (history + ((t, x),))[-3:]
        store.add_listen(5, tracks, times, history, t, x)
        assert store.load(5)[:3] == (tracks, times, history), i  # times keep every digit
    store.end_session(5, (history + ((9, 0.25),))[-3:], 9, 0.25)
    assert store.get(5) == UserState(session=[], history=[[5, 0.5], [6, 1e-7], [9, 0.25]])


def test_redis_appends_of_concurrent_requests_are_all_kept(redis_url):
    """400 requests for one user from 8 threads, each loading then recording: none is lost
    (a write-back of what each loaded kept about 60% of them), and no two drew one seq."""
    s = RedisStore(redis_url, prefix=f"test:{time.monotonic_ns()}:", history=10)

    def request(i: int) -> int:
        tracks, times, history, seq = s.load(1)
        s.add_listen(1, tracks + (i,), times + (0.5,), history, i, 0.5)
        return seq

    with ThreadPoolExecutor(8) as pool:
        seqs = list(pool.map(request, range(400)))
    tracks, _, history, _ = s.load(1)
    assert sorted(tracks) == list(range(400)) and len(history) == 10
    assert len(set(seqs)) == 400
    assert 99 <= s.client.ttl(s.key(1)) <= s.key_ttl  # every write keeps the key's expiry


def test_redis_async_client_same_state_as_sync(redis_url):
    # 50 requests at once open 50 connections, which a loaded machine may accept slower than
    # the default timeout: this test is about the state, not the timeout
    s = RedisStore(redis_url, prefix=f"test:{time.monotonic_ns()}:", history=10, timeout_seconds=10)

    async def run() -> tuple:
        assert await s.ahealthy()
        await asyncio.gather(*[s.aadd_listen(2, (), (), (), t, 0.75) for t in range(50)])
        await s.aend_session(2, (), 99, 0.5)
        await s.aadd_listen(2, (), (), (), 7, 1.0)
        return await s.aload(2)

    tracks, times, history, seq = asyncio.run(run())
    assert tracks == (7,) and times == (1.0,) and history[-2:] == ((99, 0.5), (7, 1.0)) and len(history) == 10
    again = s.load(2)
    assert again[:3] == (tracks, times, history) and again[3] > seq


def test_redis_down_is_unavailable_logged_once_and_not_fatal(caplog):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    s = RedisStore(dead, timeout_seconds=0.5)  # starts: a worker restarted during an outage must come up
    for _ in range(5):
        with pytest.raises(Unavailable, match="session store unavailable"):
            s.load(1)
    with pytest.raises(Unavailable):
        asyncio.run(s.aadd_listen(1, (), (), (), 1, 1.0))
    assert not asyncio.run(s.ahealthy())
    outages = [r for r in caplog.records if "unavailable, refusing" in r.getMessage()]
    assert len(outages) == 1 and s.outage.refused >= 6


def test_memory_store_evicts_least_recently_seen_users():
    clock = Clock()
    s = MemoryStore(ttl_seconds=10, history_ttl_seconds=100, clock=clock, max_users=3)
    for u in (1, 2, 3):
        s.put(u, UserState(session=[[u, 1.0]], history=[[u, 1.0]]))
    s.put(1, UserState(session=[[9, 1.0]], history=[[9, 1.0]]))  # 1 is the most recent now
    s.put(4, UserState(session=[[4, 1.0]], history=[[4, 1.0]]))  # 2 goes
    assert s.users == 3 and s.evictions == 1
    assert s.get(2) == UserState() and 2 not in s.sessions
    assert [s.get(u).history for u in (1, 3, 4)] == [[[9, 1.0]], [[3, 1.0]], [[4, 1.0]]]
    with pytest.raises(ValueError, match="max_users"):
        make_store({"kind": "memory", "max_users": 0})
    assert make_store({"kind": "memory", "max_users": 5}).max_users == 5


def test_redis_that_refuses_us_stops_start_up(tmp_path):
    """Unreachable is an outage (above); a wrong password will not fix itself."""
    import shutil
    import socket
    import subprocess

    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--requirepass", "right"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        RedisStore(f"redis://:right@127.0.0.1:{port}/0").close()
        with pytest.raises(Exception, match="(?i)password|auth") as e:
            RedisStore(f"redis://:wrong@127.0.0.1:{port}/0")
        assert "wrong" not in str(e.value)
    finally:
        proc.terminate()
        proc.wait()


def test_seq_goes_up_across_users_and_after_the_store_lost_it(store, redis_url):
    """Every load draws a larger seq than the one before, for any user; a restarted memory
    store, or a Redis that lost its keys, still draws above what it drew before (the seq
    then starts from the clock), so a log spanning the restart reads in order."""
    seqs = [store.load(u)[3] for u in (1, 2, 1, 1, 3)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    if isinstance(store, MemoryStore):
        restarted = MemoryStore()
    else:
        store.client.flushdb()
        restarted = RedisStore(redis_url, prefix=store.prefix)
    assert restarted.load(1)[3] > seqs[-1]
    restarted.close()
    get = store.get(1)  # tools read without drawing
    assert store.load(1)[3] > seqs[-1] and get == UserState()
