"""Two replicas (two `bentoml serve` processes) sharing one Redis and one log folder, each
user's requests alternating between them as fast as one client sends them: the event log
reads back in the order the requests were sent, and cuts the sessions that were sent.

On an unloaded machine consecutive requests of one user land in one millisecond on two
workers' files (how many: printed with `pytest -s`), and some requests name a track other
than the previous answer, as the API allows: nothing but the seq can tell their order."""
from __future__ import annotations

import http.client
import json
import random
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest

from service.launch import ServiceProcess
from svc_fixtures import N_TRACKS, make_world
from training.data.events import read_events, sessionize

pytestmark = pytest.mark.slow

USERS, CLIENTS = 2000, 2
OWN_TRACK = 0.3  # share of requests naming a track other than the previous answer


def post(conn: http.client.HTTPConnection, message: str, user: int, track: int, t: float) -> dict:
    conn.request("POST", f"/{message}/{user}", json.dumps({"track": track, "time": t}),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    body = json.loads(r.read())
    assert r.status == 200, body
    return body


def play_users(urls: list[str], users: range, seed: int) -> dict[int, list[tuple]]:
    """Each user's sessions, request after request, the k-th to replica (user + k) % 2, over one
    keep-alive connection per replica; returns what was sent, (message, track, time) per user."""
    rng = random.Random(seed)
    conns = [http.client.HTTPConnection(u.removeprefix("http://"), timeout=30) for u in urls]
    sent: dict[int, list[tuple]] = {}
    try:
        for user in users:
            out = sent[user] = []
            for _ in range(rng.randint(1, 3)):
                track, t, n = rng.randrange(N_TRACKS), 1.0, rng.randint(1, 4)
                for step in range(n + 1):
                    message = "next" if step < n else "last"
                    out.append((message, track, t))
                    answer = post(conns[(user + len(out)) % 2], message, user, track, t)
                    if message == "next":
                        track = answer["track"] if rng.random() >= OWN_TRACK else rng.randrange(N_TRACKS)
                        t = round(rng.random(), 4)
    finally:
        for c in conns:
            c.close()
    return sent


def test_two_replicas_events_read_back_in_the_order_sent(tmp_path, redis_url):
    config = make_world(tmp_path, session_store={"kind": "redis", "url": redis_url, "prefix": "order:"})
    with ExitStack() as stack:
        replicas = [ServiceProcess(str(config)) for _ in range(2)]
        for svc in replicas:
            stack.callback(svc.stop)
        with ThreadPoolExecutor(2) as pool:  # both start at once
            list(pool.map(lambda svc: svc.start(), replicas))
        urls = [svc.url for svc in replicas]
        share = USERS // CLIENTS
        with ThreadPoolExecutor(CLIENTS) as pool:
            parts = pool.map(lambda k: play_users(urls, range(k * share, (k + 1) * share), seed=k), range(CLIENTS))
            sent = {u: requests for part in parts for u, requests in part.items()}
    files = sorted((tmp_path / "logs").glob("events-*.jsonl"))
    assert len(files) == 2 and all(f.stat().st_size for f in files), "both replicas logged"

    events = read_events(tmp_path / "logs")
    got = {u: list(zip(g["message"], g["track"].tolist(), g["time"].tolist())) for u, g in events.groupby("user")}
    wrong = [u for u in sent if got.get(u) != sent[u]]
    assert not wrong, f"{len(wrong)} of {len(sent)} users read back out of order, e.g. {wrong[:5]}"

    sessions = sessionize(events)
    cut = sessions.groupby(["user", "session"])["track"].apply(list)
    expected = {}
    for u, requests in sent.items():
        s = 0
        for message, track, _ in requests:
            expected.setdefault((u, s), []).append(track)
            s += message == "last"
    assert cut.to_dict() == expected and sessions["complete"].all()

    # the figures: how often the timestamps alone could not order a user's events
    ordered = events.sort_values(["user", "seq"], kind="stable")
    same_ms = (ordered["user"].diff() == 0) & (ordered["timestamp"].diff() == 0)
    print(f"\n[replicas] users {len(sent)}, requests {len(events)}, sessions {len(expected)}, "
          f"a user's consecutive events in one millisecond: {int(same_ms.sum())}")
