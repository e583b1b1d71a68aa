"""Speed of the service: `POST /next` with 8 concurrent keep-alive connections, per recommender,
side by side with BentoML's ceiling (a trivial route in the same service, added by
benchmarks/bench_service.py: the product has none) and the machine's
(a bare one-route uvicorn app parsing the same JSON); figures are ratios against those.

    python -m benchmarks.service [--duration 4] [--rounds 3] [--connections 8] [--only NAME ...]

Load generator: `wrk -t1 -cC` (Debian package `wrk`) with a Lua script that varies users and
tracks; without wrk, a Python asyncio generator of the same kind (keep-alive connections,
one request in flight each), and the report says which. Results: printed, and written to
benchmarks/results/service.json. The catalog is 50,000 tracks with 50-long i2i lists (the
default world's size), generated into a temp dir, so the figures need no trained model.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
N_TRACKS, N_USERS, K = 50_000, 10_000, 50
BENCH_TARGET = "benchmarks.bench_service:Botify"  # the product's service + the ceiling route

WRK_SCRIPT = """
math.randomseed(%(seed)d)
request = function()
  local user = math.random(0, %(users)d - 1)
  local body = string.format('{"track": %%d, "time": %%.2f}', math.random(0, %(tracks)d - 1), math.random())
  return wrk.format("POST", "%(prefix)s" .. user, {["Content-Type"] = "application/json"}, body)
end
"""

def make_world(root: Path) -> dict[str, str]:
    """A default-sized catalog and i2i lists (random; speed does not depend on their quality)."""
    rng = random.Random(1)
    (root / "public").mkdir(parents=True)
    with (root / "public" / "tracks.json").open("w") as f:
        for t in range(N_TRACKS):
            f.write(json.dumps({"track": t, "artist": f"a{t % 2000}", "title": f"t{t}", "genre": f"g{t % 20}",
                                "year": 2000, "popularity": rng.random() * 100}) + "\n")
    with (root / "i2i.jsonl").open("w") as f:
        for t in range(N_TRACKS):
            f.write(json.dumps({"track": t, "recommendations": rng.sample(range(N_TRACKS), K)}) + "\n")
    with (root / "lists.jsonl").open("w") as f:
        for u in range(N_USERS):
            f.write(json.dumps({"user": u, "recommendations": rng.sample(range(N_TRACKS), K)}) + "\n")
    return {"catalog": str(root / "public" / "tracks.json"), "i2i": str(root / "i2i.jsonl"),
            "lists": str(root / "lists.jsonl")}


RECOMMENDERS = {
    "random": {"kind": "random"},
    "toppop": {"kind": "toppop", "top": 100},
    "sticky_artist": {"kind": "sticky_artist"},
    "indexed": {"kind": "indexed", "lists": "{lists}"},
    "contextual": {"kind": "contextual", "i2i": "{i2i}"},
    "i2i_history": {"kind": "i2i_history", "i2i": "{i2i}"},
    "session_aware": {"kind": "session_aware", "i2i": "{i2i}"},
}


def write_config(root: Path, files: dict, rec: str, store: dict, name: str) -> Path:
    import yaml

    spec = {k: (v.format(**files) if isinstance(v, str) else v) for k, v in RECOMMENDERS[rec].items()}
    cfg = {"catalog": files["catalog"], "seed": 42,
           "event_log": {"dir": str(root / "logs" / name), "max_bytes": 100 * 2**20, "backups": 2},
           "session_store": store, "recommenders": {rec: spec},
           "experiments": [{"name": "BENCH", "arms": {"C": rec}}, {"name": "AA", "arms": {"C": rec, "T1": rec}}]}
    path = root / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def run_wrk(url: str, prefix: str, duration: float, connections: int, root: Path) -> dict:
    script = root / f"wrk-{prefix.strip('/').replace('/', '-')}.lua"
    script.write_text(WRK_SCRIPT % {"seed": 1, "users": N_USERS, "tracks": N_TRACKS, "prefix": prefix})
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": _ms(pct["50"]), "p99_ms": _ms(pct["99"]), "errors": int(errors.group(1)) if errors else 0}


async def _client(host: str, port: int, prefix: str, until: float, lat: list, rng: random.Random) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    while time.perf_counter() < until:
        body = b'{"track": %d, "time": %.2f}' % (rng.randrange(N_TRACKS), rng.random())
        req = (f"POST {prefix}{rng.randrange(N_USERS)} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        t0 = time.perf_counter()
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if length is not None:
            await reader.readexactly(int(length.group(1)))
        else:  # chunked (an ASGI app that names no length, as benchmarks.bare_http)
            await reader.readuntil(b"\r\n0\r\n\r\n")
        lat.append(time.perf_counter() - t0)
        errors += not head.startswith(b"HTTP/1.1 200")
    writer.close()
    return errors


def run_python(url: str, prefix: str, duration: float, connections: int, root: Path) -> dict:
    host, port = url.split("//")[1].split(":")
    lat: list[float] = []

    async def main() -> int:
        until = time.perf_counter() + duration
        return sum(await asyncio.gather(*[_client(host, int(port), prefix, until, lat, random.Random(i))
                                          for i in range(connections)]))

    errors = asyncio.run(main())
    q = statistics.quantiles(lat, n=100)
    return {"rps": len(lat) / duration, "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3, "errors": errors}


def median_run(runs: list[dict]) -> dict:
    """Per figure, the median over rounds: one round disturbed by a neighbour's load moves it little."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"rounds": len(runs)}


def measure(load, url: str, prefixes: list[str], duration: float, connections: int, root: Path,
            rounds: int) -> list[dict]:
    """The routes of one server measured in alternation, `rounds` times each, after a warm-up:
    side by side in time as well as in process, since the machine is shared."""
    for prefix in prefixes:
        load(url, prefix, min(2.0, duration), connections, root)
    runs: list[list[dict]] = [[] for _ in prefixes]
    for _ in range(rounds):
        for i, prefix in enumerate(prefixes):
            runs[i].append(load(url, prefix, duration, connections, root))
    return [median_run(r) for r in runs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per round and route")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--only", nargs="*", help="bare, recommender names, redis1, redis2")
    ap.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:])
    sys.path.insert(0, str(REPO))
    from service.launch import ServiceProcess, free_port

    use_wrk = shutil.which("wrk") is not None and not args.python_load
    load = run_wrk if use_wrk else run_python
    generator = f"wrk -t1 -c{args.connections}" if use_wrk else f"python asyncio, {args.connections} connections"
    want = lambda name: not args.only or name in args.only  # noqa: E731
    results: dict[str, dict] = {}
    root = Path(tempfile.mkdtemp(prefix="botify-bench-"))
    env = {"BENTOML_HOME": str(root / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    redis_proc = None
    try:
        files = make_world(root)
        print(f"load: {generator}, median of {args.rounds} rounds of {args.duration:.0f}s per route "
              f"(routes of one server alternate), catalog {N_TRACKS:,} tracks", flush=True)

        def report(name: str, r: dict) -> None:
            results[name] = r
            print(f"  {name:<24} {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.2f} ms   p99 {r['p99_ms']:7.2f} ms"
                  + (f"   errors {r['errors']}" if r["errors"] else ""), flush=True)

        if want("bare"):
            port = free_port()
            proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "benchmarks.bare_http:app", "--port", str(port),
                                     "--host", "127.0.0.1", "--no-access-log", "--log-level", "warning"], cwd=REPO)
            try:
                for _ in range(100):
                    try:
                        import urllib.request
                        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/next/1",
                                                                      data=b'{"track":1}'), timeout=1)
                        break
                    except OSError:
                        time.sleep(0.1)
                report("bare uvicorn", measure(load, f"http://127.0.0.1:{port}", ["/next/"], args.duration,
                                               args.connections, root, args.rounds)[0])
            finally:
                proc.terminate()
                proc.wait()

        memory = {"kind": "memory"}
        for rec in RECOMMENDERS:
            if not want(rec):
                continue
            cfg = write_config(root, files, rec, memory, rec)
            with ServiceProcess(str(cfg), env=env, target=BENCH_TARGET) as svc:
                trivial, served = measure(load, svc.url, ["/bench/trivial/", "/next/"], args.duration,
                                          args.connections, root, args.rounds)
            report(f"trivial route ({rec})", trivial)
            report(f"next: {rec}", served)

        if want("redis1") or want("redis2"):
            exe = shutil.which("redis-server")
            if exe is None:
                print("  redis: skipped (redis-server not installed: make redis)")
            else:
                rport = free_port()
                redis_proc = subprocess.Popen([exe, "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                              stdout=subprocess.DEVNULL)
                time.sleep(0.5)
                store = {"kind": "redis", "url": f"redis://127.0.0.1:{rport}/0"}
                for workers in (1, 2):
                    if want(f"redis{workers}"):
                        cfg = write_config(root, files, "session_aware", store, f"redis{workers}")
                        with ServiceProcess(str(cfg), workers=workers, env=env) as svc:
                            report(f"next: session_aware, redis, {workers} worker{'s' * (workers > 1)}",
                                   measure(load, svc.url, ["/next/"], args.duration, args.connections, root,
                                           args.rounds)[0])

        def ratio(a: str, b: str) -> float | None:
            return results[a]["rps"] / results[b]["rps"] if a in results and b in results else None

        ratios = {}
        for rec in RECOMMENDERS:
            if f"next: {rec}" in results:
                ratios[f"next: {rec} / trivial route, same server"] = ratio(f"next: {rec}", f"trivial route ({rec})")
        for name in results:
            if name.startswith("trivial route"):
                ratios[f"{name} / bare uvicorn"] = ratio(name, "bare uvicorn")
        ratios["redis 2 workers / redis 1 worker"] = ratio("next: session_aware, redis, 2 workers",
                                                           "next: session_aware, redis, 1 worker")
        ratios["redis 2 workers / memory 1 worker"] = ratio("next: session_aware, redis, 2 workers",
                                                            "next: session_aware")
        ratios["session_aware / course's 180 req/s"] = (results["next: session_aware"]["rps"] / 180
                                                       if "next: session_aware" in results else None)
        print("ratios (throughput):")
        for k, v in ratios.items():
            if v is not None:
                print(f"  {k:<48} {v:5.2f}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "service.json").write_text(json.dumps(
            {"generator": generator, "duration_s": args.duration, "rounds": args.rounds, "cpus": os.cpu_count(), "results": results,
             "ratios": ratios}, indent=2))
        return 0
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
