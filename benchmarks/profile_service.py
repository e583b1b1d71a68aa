"""Where a request's time goes: the service's worker sampled with py-spy under wrk load, the
samples split into the layers of the stack, beside the bare uvicorn app under the same load.

    pip install --target /tmp/pyspy py-spy && PYSPY=/tmp/pyspy/bin/py-spy python -m benchmarks.profile_service

(py-spy is a profiler, not a dependency of the project: point PYSPY at it.) Layers, as
shares of the worker's CPU samples:
- send: uvicorn's `transport.write` of the response (the socket syscall, kernel time);
- server: the rest outside the app (uvloop's event loop, httptools parsing, uvicorn's protocol);
- BentoML + Starlette: BentoML's ASGI app (context, timeout, error and exception middleware,
  routing to the mounted app), everything in it outside the FastAPI handler and the send;
- FastAPI: FastAPI's request handling around our endpoint (dependency solving, path params);
- ours: the endpoint itself (parse, recommend, session store, event log).
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LAYERS = ("send", "server", "BentoML + Starlette", "FastAPI", "ours")


def split_layers(raw: str, endpoint: str) -> dict[str, float]:
    """py-spy `raw` output (one `frame;frame;... count` per line) → share of samples per layer."""
    counts = collections.Counter()
    total = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, n = line.rsplit(" ", 1)
        n = int(n)
        frames = stack.split(";")
        total += n
        names = [re.sub(r" \(.*", "", f) for f in frames]
        if any(f.startswith("RequestResponseCycle.send") for f in names) and "transport" not in names[-1]:
            last = frames[-1]
            if last.startswith("RequestResponseCycle.send"):
                counts["send"] += n
                continue
        if endpoint in names:
            counts["ours"] += n
        elif any(f.startswith("get_request_handler") for f in names):
            counts["FastAPI"] += n
        elif any(f in ("ContextMiddleware.__call__", "app") for f in names) and not endpoint == "app":
            counts["BentoML + Starlette"] += n
        else:
            counts["server"] += n
    return {k: counts[k] / total for k in LAYERS} | {"samples": total}


def profile(pid: int, url: str, route: str, seconds: float, root: Path, pyspy: str) -> tuple[str, dict]:
    from benchmarks.service import run_wrk
    run_wrk(url, route, 2, 8, root)
    out = root / f"spy-{pid}.txt"
    spy = subprocess.Popen([pyspy, "record", "-p", str(pid), "-r", "250", "-d", str(int(seconds)), "-f", "raw",
                            "-o", str(out), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "PYTHONPATH": str(Path(pyspy).parents[1])})
    load = run_wrk(url, route, seconds + 2, 8, root)
    spy.wait()
    return out.read_text(), load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=12)
    args = ap.parse_args(argv)
    pyspy = os.environ.get("PYSPY") or "py-spy"
    sys.path.insert(0, str(REPO))
    import psutil

    from benchmarks.service import BENCH_TARGET, make_world, write_config
    from service.launch import ServiceProcess, free_port
    root = Path(tempfile.mkdtemp(prefix="botify-profile-"))
    try:
        files = make_world(root)
        env = {"BENTOML_HOME": str(root / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
        rows = []
        port = free_port()
        bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "benchmarks.bare_http:app", "--port", str(port),
                                 "--host", "127.0.0.1", "--no-access-log", "--log-level", "warning"], cwd=REPO)
        try:
            time.sleep(2)
            raw, load = profile(bare.pid, f"http://127.0.0.1:{port}", "/next/", args.seconds, root, pyspy)
            rows.append(("bare uvicorn", load, split_layers(raw, "app")))
        finally:
            bare.terminate()
            bare.wait()
        cfg = write_config(root, files, "session_aware", {"kind": "memory"}, "profile")
        with ServiceProcess(str(cfg), env=env, target=BENCH_TARGET) as svc:
            worker = psutil.Process(svc.proc.pid).children(recursive=True)[0].pid
            for route, endpoint, name in (("/bench/trivial/", "trivial", "BentoML trivial route"),
                                          ("/next/", "next_track", "/next SessionAware")):
                raw, load = profile(worker, svc.url, route, args.seconds, root, pyspy)
                rows.append((name, load, split_layers(raw, endpoint)))
        print(f"{'':<24} {'req/s':>7} " + " ".join(f"{k:>20}" for k in LAYERS))
        for name, load, layers in rows:
            print(f"{name:<24} {load['rps']:7.0f} " + " ".join(f"{100 * layers[k]:19.1f}%" for k in LAYERS))
        print("CPU per request (ms) by layer, = share x (1 / req/s), the worker being CPU-bound under wrk -c8:")
        for name, load, layers in rows:
            print(f"{name:<24} " + " ".join(f"{1000 * layers[k] / load['rps']:19.3f} " for k in LAYERS))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
