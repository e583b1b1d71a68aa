"""Speed of the simulator, as ratios against baselines run side by side on this machine.

    python -m benchmarks.sim [--seconds 3] [--config sim/config/env.yml] [--no-remote]

- in-process: steps/s of the dummy agent through the runner's loop (``sim.run``'s
  ``play_sessions``, every session seeded by its name) on the default world, single
  process and ``multi``; baseline: a
  straightforward course-style implementation of the same user model (a numpy call
  per draw, a Counter of artists), the kind of loop the course's simulator runs.
- batched: steps/s of ``ListenerVectorEnv`` with a batch of random actions per step, and
  of whole episodes through ``sim.batch.play_batched`` (the offline evaluation path).
- remote: steps/s of the remote agent against the real service
  (``service.launch.ServiceProcess`` with ``service/config/cold_start.yml``), beside the
  same client against a bare one-route HTTP app (the machine's HTTP ceiling); and
  ``multi`` clients against a service with as many workers.

Goals (issue 2): 60,000 steps/s in-process, 1,000 steps/s over HTTP. Results are printed
and written to ``benchmarks/results/sim.json``.
"""
from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
GOAL_INPROCESS, GOAL_HTTP = 60_000, 1_000


class CourseStyleEnv:
    """The baseline: the same user model written the obvious way (numpy draw per call,
    a Counter per session, numpy scalar math), as a course simulator would be."""

    def __init__(self, world, session, seed: int):
        self.w, self.s = world, session
        self.rng = np.random.default_rng(seed)

    def reset(self):
        w = self.w
        self.user = self.rng.integers(w.n_users)
        j = self.rng.integers(w.n_interests[self.user])
        self.emb = w.embeddings[w.interests[self.user][j]]
        first = w.nearest[self.user, j, self.rng.integers(w.nearest.shape[2])]
        self.played = {int(first)}
        self.artists = collections.Counter([w.track_artist[first]])
        self.budget, self.steps = self.s.budget, 0
        return int(first)

    def step(self, track):
        w = self.w
        if track in self.played:
            t = 0.0
        else:
            x = (np.dot(w.embeddings[track], self.emb) - w.consume_bias[self.user]) * w.consume_sharpness[self.user]
            t = float(np.round(1 / (1 + np.exp(-x)) * self.s.artist_discount ** self.artists[w.track_artist[track]], 2))
        self.played.add(track)
        self.artists[w.track_artist[track]] += 1
        self.steps += 1
        if self.rng.random() > t:
            self.budget -= 1
        return t, self.budget <= 0 or self.steps >= self.s.max_steps


def _timed(fn, seconds: float) -> tuple[int, float]:
    """Call ``fn`` (returns steps done) until ``seconds`` have passed."""
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += fn()
    return steps, time.perf_counter() - start


def bench_course_style(world, session, seconds: float) -> float:
    env = CourseStyleEnv(world, session, 0)
    rng = np.random.default_rng(1)

    def episodes():
        n = 0
        for _ in range(50):
            env.reset()
            done = False
            while not done:
                _, done = env.step(int(rng.integers(world.n_tracks)))
                n += 1
        return n
    steps, dt = _timed(episodes, seconds)
    return steps / dt


def bench_single(cfg, world, seconds: float) -> float:
    from sim.agents import DummyAgent
    from sim.envs import ListenerEnv
    from sim.run import play_sessions
    env, agent = ListenerEnv(world, cfg.session), DummyAgent(world.n_tracks, 0)
    block = [0]

    def run():
        block[0] += 1
        return sum(r.steps for r in play_sessions(env, agent, 0, 1, 50 * block[0], 50))
    steps, dt = _timed(run, seconds)
    return steps / dt


def bench_multi(cfg, processes: int, episodes: int) -> float:
    from sim.run import AgentSpec, run_days
    import io
    spec = AgentSpec("dummy", None, 1.0, 1.0, None, ())
    start = time.perf_counter()
    rows = run_days(cfg, spec, episodes=episodes, seed=0, days=1, processes=processes,
                    stats=None, prompt=False, out=io.StringIO(), progress=False)
    return sum(r.steps for r in rows) / (time.perf_counter() - start)


def bench_vector(cfg, world, seconds: float, num_envs: int = 4096) -> float:
    from sim.envs import ListenerVectorEnv
    venv = ListenerVectorEnv(world, cfg.session, num_envs)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)

    def run():
        for _ in range(10):
            venv.step(rng.integers(world.n_tracks, size=num_envs))
        return 10 * num_envs
    steps, dt = _timed(run, seconds)
    return steps / dt


def bench_batched(cfg, world, seconds: float, num_envs: int = 4096) -> float:
    """Whole episodes through ``sim.batch.play_batched`` (rows like the runner's)."""
    from sim.batch import BatchDummy, play_batched
    from sim.envs import ListenerVectorEnv
    venv = ListenerVectorEnv(world, cfg.session, num_envs)
    seed = [0]

    def run():
        seed[0] += 1
        rows = play_batched(venv, BatchDummy(world.n_tracks, seed[0]), 4 * num_envs, seed[0])
        return sum(r.steps for r in rows)
    steps, dt = _timed(run, seconds)
    return steps / dt


def _remote_rate(cfg, world, url: str, seconds: float) -> float:
    from sim.agents import RemoteAgent
    from sim.envs import ListenerEnv
    from sim.run import play_sessions
    env, agent = ListenerEnv(world, cfg.session), RemoteAgent(url)
    block = [0]

    def run():
        block[0] += 1
        return sum(r.steps for r in play_sessions(env, agent, 0, 1, 5 * block[0], 5))
    try:
        run()   # warm up the connection and the service's caches
        steps, dt = _timed(run, seconds)
    finally:
        agent.close()
    return steps / dt


def _remote_multi_rate(cfg, url: str, processes: int, episodes: int) -> float:
    from sim.run import AgentSpec, run_days
    import io
    spec = AgentSpec("remote", url, cfg.remote.connect_timeout, cfg.remote.read_timeout, None, ())
    start = time.perf_counter()
    rows = run_days(cfg, spec, episodes=episodes, seed=0, days=1, processes=processes,
                    stats=None, prompt=False, out=io.StringIO(), progress=False)
    return sum(r.steps for r in rows) / (time.perf_counter() - start)


def bench_remote(cfg, world, seconds: float, processes: int) -> dict:
    if not (REPO / "service" / "launch.py").exists():
        return {"skipped": "service not built"}
    sys.path.insert(0, str(REPO))
    from service.launch import ServiceProcess, free_port
    import requests
    out: dict = {}
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "benchmarks.bare_http:app", "--port", str(port),
                             "--log-level", "warning"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.post(f"http://127.0.0.1:{port}/next/0", json={"track": 0, "time": 1.0}, timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        out["bare_http_steps_per_s"] = _remote_rate(cfg, world, f"http://127.0.0.1:{port}", seconds)
    finally:
        bare.terminate()
        bare.wait(timeout=10)
    try:
        with ServiceProcess("service/config/cold_start.yml", workers=processes) as svc:
            out["service_steps_per_s"] = _remote_rate(cfg, world, svc.url, seconds)
            out["service_multi_processes"] = processes
            out["service_multi_steps_per_s"] = _remote_multi_rate(
                cfg, svc.url, processes, episodes=max(20, int(out["service_steps_per_s"] * seconds / 7)))
    except Exception as e:   # the service is another part's: report, do not crash the suite
        out["error"] = f"{type(e).__name__}: {str(e)[-500:]}"
    return out


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))
    from sim.config import load_config
    from sim.world import World, write
    p = argparse.ArgumentParser(prog="python -m benchmarks.sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="sim/config/env.yml")
    p.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    p.add_argument("--processes", type=int, default=2, help="processes for the multi figure")
    p.add_argument("--no-remote", action="store_true", help="skip the HTTP figures")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    write(cfg.world)    # idempotent: generates the world only when missing
    world = World.from_config(cfg)
    r: dict = {"world": {"tracks": world.n_tracks, "users": world.n_users}, "seconds": args.seconds}
    r["course_style_steps_per_s"] = bench_course_style(world, cfg.session, args.seconds)
    r["single_steps_per_s"] = bench_single(cfg, world, args.seconds)
    single_eps = r["single_steps_per_s"] * args.seconds / 7.0   # about `seconds` of work per process
    episodes = int(max(1000, single_eps * args.processes))
    r["multi_processes"] = args.processes
    r["multi_steps_per_s"] = bench_multi(cfg, args.processes, episodes)
    r["vector_num_envs"] = 4096
    r["vector_steps_per_s"] = bench_vector(cfg, world, args.seconds)
    r["batched_episodes_steps_per_s"] = bench_batched(cfg, world, args.seconds)
    r["remote"] = {"skipped": "--no-remote"} if args.no_remote else bench_remote(cfg, world, args.seconds, args.processes)
    base = r["course_style_steps_per_s"]
    print(f"world: {world.n_tracks} tracks, {world.n_users} users; {args.seconds:g} s per figure")
    print(f"{'path':42} {'steps/s':>12} {'vs course-style':>16}")
    rows = [("course-style loop (baseline)", base),
            ("in-process dummy, single", r["single_steps_per_s"]),
            (f"in-process dummy, multi x{args.processes}", r["multi_steps_per_s"]),
            (f"VectorEnv.step, batch {r['vector_num_envs']}", r["vector_steps_per_s"]),
            (f"play_batched episodes, batch {r['vector_num_envs']}", r["batched_episodes_steps_per_s"])]
    for name, v in rows:
        print(f"{name:42} {v:12,.0f} {v / base:15.1f}x")
    rem = r["remote"]
    if "bare_http_steps_per_s" in rem:
        ceiling = rem["bare_http_steps_per_s"]
        print(f"{'remote path':42} {'steps/s':>12} {'vs bare HTTP':>16}")
        remote_rows = [("bare one-route HTTP app (ceiling)", ceiling)]
        if "service_steps_per_s" in rem:
            remote_rows.append(("Botify service (cold_start), 1 client", rem["service_steps_per_s"]))
        if "service_multi_steps_per_s" in rem:
            n = rem["service_multi_processes"]
            remote_rows.append((f"Botify service, {n} workers, multi x{n}", rem["service_multi_steps_per_s"]))
        for name, v in remote_rows:
            print(f"{name:42} {v:12,.0f} {v / ceiling:15.2f}x")
    for key in ("skipped", "error"):
        if key in rem:
            print(f"remote: {key}: {rem[key]}")
    print(f"goals: in-process {GOAL_INPROCESS:,} steps/s "
          f"({'met' if r['single_steps_per_s'] >= GOAL_INPROCESS else 'NOT met'}), "
          f"HTTP {GOAL_HTTP:,} steps/s "
          f"({'met' if max(rem.get('service_steps_per_s', 0), rem.get('service_multi_steps_per_s', 0)) >= GOAL_HTTP else 'not met / not measured'})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sim.json").write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
