"""Serverless-style figures of the service: time from process (or container) start to the
first `200` of `POST /next`, memory per worker, time from SIGTERM to exit; side by side with
the smallest BentoML service (benchmarks/trivial_bento.py) on the same machine and load.

    python -m benchmarks.coldstart [--rounds 3] [--image botify:TAG]

Cases (each started `--rounds` times, one start of each case per round, median reported):
- trivial BentoML service: BentoML's own floor;
- Botify, cold-start arms (service/config/cold_start.yml: catalog only);
- Botify, the experiment's arms (service/config/experiments.yml) with BentoML models holding
  `i2i.npy` (memory-mapped), as the packaged service serves them;
- Botify, the same arms from JSON-lines files (how lists were served before);
- `--image`: a container of `make container`'s image (`docker run --network host`) serving its
  own config, the product (SessionAware over the champion's lists packed in the image, its own
  packed catalog).
The catalog is 50,000 tracks with 50-long lists (the default world's size), generated into a
temp dir. The course's service took 42 s to its first answer (issue 10's measurement; its
code is not part of this repository), shown as the reference.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
COURSE_SECONDS = 42.0
BODY = b'{"track": 1, "time": 1.0}'


def _post(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=BODY), timeout=1) as r:
            return r.status
    except OSError:
        return 0


def _memory(pid: int) -> dict:
    """RSS and PSS (shared pages split among their users) of each worker: the processes under
    `pid` (BentoML's arbiter), or `pid` itself when it has none."""
    import psutil
    root = psutil.Process(pid)
    procs = root.children(recursive=True) or [root]
    out = []
    for p in procs:
        try:
            info = p.memory_full_info()
            out.append({"rss_mb": info.rss / 2**20, "pss_mb": getattr(info, "pss", info.rss) / 2**20})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    arbiter = root.memory_info().rss / 2**20 if procs[0] is not root else 0.0
    return {"workers": out, "arbiter_rss_mb": arbiter}


def start_to_first_200(cmd: list[str], env: dict, url: str, stop: list[str] | None = None,
                       timeout: float = 180.0, warm: int = 2000) -> dict:
    """Start `cmd`, poll `POST url` every 10 ms until a 200; then `warm` requests, memory, and
    the time SIGTERM (or `stop`) takes to end it."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
    try:
        first = None
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode} before answering")
            if _post(url) == 200:
                first = time.perf_counter() - t0
                break
            time.sleep(0.01)
        if first is None:
            raise RuntimeError(f"{' '.join(cmd)}: no 200 within {timeout:.0f}s")
        base = url.rsplit("/", 1)[0]
        for i in range(warm):
            urllib.request.urlopen(urllib.request.Request(f"{base}/{i % 5000}",
                                                          data=b'{"track": %d, "time": 0.5}' % (i * 7919 % 50000)),
                                   timeout=5).read()
        mem = _memory(proc.pid) if stop is None else {}
        t1 = time.perf_counter()
        if stop is None:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            subprocess.run(stop, capture_output=True, timeout=60)
        proc.wait(timeout=60)
        return {"first_200_s": first, "sigterm_to_exit_s": time.perf_counter() - t1, **mem}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bento_models() -> list[str]:
    """The BentoML models service/config/experiments.yml serves (names without a version)."""
    from service.config import bentoml_models, read_config
    return [tag.split(":")[0] for tag in bentoml_models(read_config(REPO / "service/config/experiments.yml"))]


def make_models(root: Path, files: dict, env: dict) -> None:
    """The BentoML models service/config/experiments.yml serves, holding the lists as `i2i.npy`
    (what training.registry.export writes), in the benchmark's own BentoML home."""
    script = (
        "import sys, numpy as np, bentoml\n"
        "from service.artifacts import load_lists\n"
        "table = load_lists(__import__('pathlib').Path(sys.argv[2]), 'track', 50000, 50000, '')\n"
        "with bentoml.models.create(sys.argv[1], labels={'mlflow_version': '0'}) as m:\n"
        "    np.save(m.path_of('i2i.npy'), table)\n")
    for name in bento_models():
        subprocess.run([sys.executable, "-c", script, name, files["i2i"]], check=True, cwd=REPO,
                       env={**os.environ, **env})


def write_configs(root: Path, files: dict) -> dict[str, Path]:
    base = yaml.safe_load((REPO / "service/config/experiments.yml").read_text())
    base.update(catalog=files["catalog"], event_log={"dir": str(root / "logs")})
    out = {}
    path = out["experiment arms, BentoML models (npy)"] = root / "experiments-bentoml.yml"
    path.write_text(yaml.safe_dump(base))
    files_cfg = json.loads(json.dumps(base))
    for spec in files_cfg["recommenders"].values():
        if "i2i" in spec:
            spec["i2i"] = files["i2i"]
    path = out["experiment arms, JSON-lines files"] = root / "experiments-files.yml"
    path.write_text(yaml.safe_dump(files_cfg))
    cold = yaml.safe_load((REPO / "service/config/cold_start.yml").read_text())
    cold.update(catalog=files["catalog"], event_log={"dir": str(root / "logs")})
    path = out["cold-start arms"] = root / "cold.yml"
    path.write_text(yaml.safe_dump(cold))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--image", default="", help="also time this container image (make container)")
    ap.add_argument("--only", nargs="*", help="case names (substrings) to run")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from benchmarks.service import make_world
    from service.launch import free_port

    root = Path(tempfile.mkdtemp(prefix="botify-coldstart-"))
    env = {"BENTOML_HOME": str(root / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    results: dict[str, dict] = {}
    try:
        files = make_world(root)
        make_models(root, files, env)
        cases: list[tuple[str, callable]] = []

        def served(target: str, config: Path | None):
            def run() -> dict:
                port = free_port()
                e = {**env, **({"BOTIFY_CONFIG": str(config)} if config else {})}
                return start_to_first_200([bentoml, "serve", target, "--port", str(port)], e,
                                          f"http://127.0.0.1:{port}/next/1")
            return run

        cases.append(("trivial BentoML service", served("benchmarks.trivial_bento:Trivial", None)))
        for name, cfg in write_configs(root, files).items():
            cases.append((f"Botify, {name}", served("service.service:Botify", cfg)))
        if args.image:
            def container() -> dict:
                port = free_port()
                name = f"botify-coldstart-{os.getpid()}-{port}"
                cmd = ["docker", "run", "--rm", "--name", name, "--network", "host", "-e", "BOTIFY_LOG_DIR=/tmp/logs",
                       args.image, "serve", "--port", str(port)]   # the image's own config: the product
                r = start_to_first_200(cmd, {}, f"http://127.0.0.1:{port}/next/1",
                                       stop=["docker", "stop", "-t", "30", name])
                return r
            cases.append((f"container {args.image}, the product (its own config)", container))
        print(f"time to first 200 of POST /next, median of {args.rounds} starts; 50,000-track catalog", flush=True)
        cases = [(name, run) for name, run in cases if not args.only or any(o in name for o in args.only)]
        # round by round, each case once per round: on a shared machine whose load drifts, every
        # case sees the same stretch of load, so the ratios to the trivial service hold
        rounds: dict[str, list[dict]] = {name: [] for name, _ in cases}
        for _ in range(args.rounds):
            for name, run in cases:
                rounds[name].append(run())
        for name, _ in cases:
            runs = rounds[name]
            r = {"first_200_s": statistics.median(x["first_200_s"] for x in runs),
                 "first_200_all_s": [round(x["first_200_s"], 2) for x in runs],
                 "sigterm_to_exit_s": statistics.median(x["sigterm_to_exit_s"] for x in runs)}
            if runs[-1].get("workers"):
                r["worker_rss_mb"] = max(w["rss_mb"] for w in runs[-1]["workers"])
                r["worker_pss_mb"] = max(w["pss_mb"] for w in runs[-1]["workers"])
                r["arbiter_rss_mb"] = runs[-1]["arbiter_rss_mb"]
            results[name] = r
            mem = (f"   worker RSS {r['worker_rss_mb']:5.0f} MB (PSS {r['worker_pss_mb']:4.0f})   "
                   f"arbiter RSS {r['arbiter_rss_mb']:4.0f} MB" if "worker_rss_mb" in r else "")
            print(f"  {name:<52} {r['first_200_s']:5.2f} s {r['first_200_all_s']}   "
                  f"SIGTERM→exit {r['sigterm_to_exit_s']:4.2f} s{mem}", flush=True)
        print(f"  {'the course service (issue 10, reference)':<52} {COURSE_SECONDS:5.2f} s")
        trivial = results.get("trivial BentoML service", {}).get("first_200_s")
        if trivial:
            print("ratios (time to first 200 / trivial BentoML service):")
            for name, r in results.items():
                print(f"  {name:<52} {r['first_200_s'] / trivial:5.2f}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "coldstart.json").write_text(json.dumps({"rounds": args.rounds, "cpus": os.cpu_count(),
                                                            "results": results,
                                                            "course_seconds": COURSE_SECONDS}, indent=2))
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
