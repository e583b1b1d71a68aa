"""`make container-test`: the packaged service in a container plays the same day as the
same Bento served by a process, and two containers sharing one Redis play it too.

1. a Docker engine (container/engine.sh) and the base image (container/base_image.sh);
2. in throwaway stores (a temp MLflow tracking URI and BENTOML_HOME, never the user's): two
   registered versions of the default world's model (seeded initial weights: the packaging,
   not the model's quality, is under test), `@champion` moved to the second, and the
   promotion's export step (`training.registry.promotion.deploy`) into the BentoML models;
3. `bentoml build` with the project's bentofile for experiments.yml's arms, `bentoml containerize` (BentoML's
   generated Dockerfile on the local base image) into an image;
4. the image holds no compiler and no git, and is at most 500 MB;
5. one day of the default world (`--episodes`, `--seed`) with service/config/experiments.yml's
   arms, played by the simulator over HTTP against (a) `bentoml serve <bento>` (a process),
   (b) the image, (c) the deployment (deploy/compose.py: two replicas of the image sharing
   one Redis with append-only persistence and one log folder, behind nginx, which sends each
   request to the next replica; the tracking server beside them), (d) the same with the
   simulator in `multi` mode (2 processes); the deployment is brought down after each day
   and must leave no container;
6. checks: (b) plays the same sessions, logs the same lines (latency, timestamps and seqs aside)
   and gives the same A/B table (latency rows aside) as (a); (c) the same sessions, lines
   and table as (b), each replica answering half the requests; (d) the same sessions as (b)
   except for users the two simulator processes played at once (only possible for a user
   with several sessions that day: sim/run.py's documented caveat); GET / of the container
   names the champion's version and run id.

    python -m container.test [--episodes 1000] [--seed 424242] [--image IMAGE] [--keep]

Exit 0 when every check holds; the report says what differs otherwise. Takes minutes
(mostly the image build on this engine's vfs storage); see README.md for the measured time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORLD = "sim/config/env.yml"
CONFIG = "service/config/experiments.yml"


def step(msg: str) -> float:
    print(f"[container-test] {msg}", flush=True)
    return time.perf_counter()


MAX_IMAGE_BYTES = 500 * 10**6
# what a runtime image must not hold: a compiler or git (BentoML's default Debian setup adds both)
BUILD_TOOLS = ("gcc", "cc", "c++", "g++", "make", "git")


def run(cmd: list[str], cwd: Path = REPO, **kw) -> str:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise SystemExit(f"command failed ({out.returncode}): {' '.join(cmd)}\n{(out.stdout + out.stderr)[-3000:]}")
    return out.stdout


def register_versions(world: Path) -> tuple[str, str]:
    """Two registered versions (the course's and the seed's architecture), untrained."""
    import mlflow

    from training.registry import tracking
    from training.data.catalog import load_catalog
    from training.learning.train import EXPERIMENT, TrainConfig, build_model
    tracking.setup(EXPERIMENT)
    catalog = load_catalog(world)
    versions = []
    for cfg in ("training/config/course.yml", "training/config/seed.yml"):
        model = build_model(TrainConfig.from_yaml(REPO / cfg), catalog)
        with mlflow.start_run(run_name=f"container-test {cfg}"):
            mlflow.set_tag("dataset_digest", "container-test-untrained")
            versions.append(tracking.log_model(model, register=tracking.MODEL_NAME))
    mlflow.MlflowClient().set_registered_model_alias(tracking.MODEL_NAME, tracking.CHAMPION, versions[1])
    return versions[0], versions[1]


def image_problems(image: str) -> list[str]:
    """What makes `image` more than a runtime: build tools on its PATH, a size over the cap."""
    found = run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
                 " ".join(f"command -v {t};" for t in BUILD_TOOLS) + " true"]).split()
    size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", image]).strip())
    out = [f"the image holds build tools: {found}"] if found else []
    if size > MAX_IMAGE_BYTES:
        out.append(f"the image is {size / 1e6:.0f} MB, over {MAX_IMAGE_BYTES / 1e6:.0f} MB")
    print(f"  image {image}: {size / 1e6:.0f} MB, build tools: {found or 'none'}", flush=True)
    return out


def free_deployment(root: Path, image: str, name: str):
    """A Deployment of two replicas in `root/name` on ports nothing listens on."""
    from deploy.compose import Deployment
    from service.launch import free_port, port_in_use
    while True:
        base = free_port()
        if not any(port_in_use(base + i) for i in (1, 2)):
            break
    return Deployment(root / name, replicas=2, image=image, port=free_port(), replica_port=base,
                      redis_port=free_port(), tracking_port=free_port(), pg_port=free_port(),
                      config=CONFIG, project=f"botify-test-{os.getpid()}-{name}")


def events(log_dir: Path):
    from training.data.events import read_events
    return read_events(log_dir)


def without_timing(df):
    """The log's lines as comparable rows: latency, timestamps and seqs dropped, arms as JSON text."""
    out = df.drop(columns=["latency", "timestamp", "seq"])
    out["experiments"] = out["experiments"].map(lambda e: json.dumps(e, sort_keys=True))
    return out.reset_index(drop=True)


def table(df, design):
    """The experiment's A/B table of a day's log (training.ab.analysis.analyse_log), latency rows aside."""
    from training.ab.analysis import analyse_log
    from training.ab.users import LATENCY_METRICS
    t = analyse_log(df, design).table
    return t[~t["metric"].isin(list(LATENCY_METRICS))].reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=424242)
    ap.add_argument("--image", default="", help="use this image instead of building one")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (stores, logs)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    t_all = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="botify-container-test-"))
    os.environ.update({"BENTOML_HOME": str(root / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
                       "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})
    timings: dict[str, float] = {}
    try:
        t = step("docker engine, base image, the deployment's images (Redis, nginx, tracking server)")
        run(["container/engine.sh"])
        run(["container/base_image.sh"])
        run(["deploy/images.sh"])
        run([sys.executable, "-m", "sim.world", "--config", WORLD])
        timings["engine_images_world_s"] = time.perf_counter() - t

        t = step("registry: two versions, @champion, the promotion's export step into BentoML")
        import yaml

        from training.registry.promotion import deploy
        from training.ab.simconfig import world_dir
        world = world_dir(REPO / WORLD)
        control, champion = register_versions(world)
        exp_cfg = yaml.safe_load((REPO / "training/config/experiment.yml").read_text())
        tags = deploy(exp_cfg["promotion"]["deploy"], {"baseline": control, "champion": champion})
        timings["export_s"] = time.perf_counter() - t
        print(f"  versions: control {control}, champion {champion}; BentoML: {tags}", flush=True)

        t = step("bentoml build")
        bentoml = str(Path(sys.executable).with_name("bentoml"))
        bento = run([bentoml, "build", "--arg", f"config={CONFIG}", "--output", "tag"]).strip().splitlines()[-1].replace("__tag__:", "")
        timings["build_s"] = time.perf_counter() - t
        image = args.image
        if not image:
            t = step(f"bentoml containerize {bento} (BentoML's Dockerfile, base image from container/base_image.sh)")
            image = f"botify-test:{bento.split(':')[1]}"
            # from the temp folder: BentoML 1.4.40 resolves the Bento's dockerfile_template, copied
            # there, against the working directory and refuses it otherwise (BentoML issue 5566)
            run([bentoml, "containerize", bento, "--backend", "docker", "--opt", "network=host", "-t", image],
                cwd=Path(tempfile.gettempdir()), env={**os.environ, "DOCKER_BUILDKIT": "0"})
            timings["containerize_s"] = time.perf_counter() - t
        print(f"  bento {bento}, image {image}", flush=True)
        failures = image_problems(image)

        import pandas as pd
        import requests

        from service.container import ContainerService
        from service.launch import ServiceProcess
        from training.ab.play import SimCommand, simulate
        from dataclasses import replace

        from training.jobs.configs import load_experiment
        cfg = replace(load_experiment().design, experiment=yaml.safe_load((REPO / CONFIG).read_text())["experiments"][0]["name"])

        def play(url: str, name: str, processes: int = 1) -> pd.DataFrame:
            stats = simulate(SimCommand(config=Path(WORLD), episodes=args.episodes, seed=args.seed,
                                        stats=root / name / "episodes.csv", recommender="remote", url=url,
                                        processes=processes), f"simulator ({name})", root / name / "sim.log")
            return stats.sort_values(["day", "episode"]).reset_index(drop=True)

        def logs(name: str, *parts: str) -> Path:
            d = root / name / "logs" / "/".join(parts) if parts else root / name / "logs"
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o777)  # the container's user writes here
            return d

        t = step(f"day (a): bentoml serve {bento} (a process)")
        with ServiceProcess(CONFIG, target=bento, cwd=root, env={"BOTIFY_LOG_DIR": str(logs("process"))}) as svc:
            stats_a = play(svc.url, "process")
        timings["day_process_s"] = time.perf_counter() - t

        t = step(f"day (b): docker run {image}")
        env = {"BOTIFY_CONFIG": CONFIG, "BOTIFY_LOG_DIR": "/logs"}
        with ContainerService(image, env=env, volumes={logs("container"): "/logs"}) as c:
            status = requests.get(c.url + "/").json()
            stats_b = play(c.url, "container")
        timings["day_container_s"] = time.perf_counter() - t

        t = step("days (c), (d): the deployment: two replicas + Redis (append-only) behind nginx, the tracking server")
        per_replica, left = {}, {}
        for day, processes in (("replicas", 1), ("replicas-multi", 2)):
            dep = free_deployment(root, image, day)
            try:
                dep.up()
                stats = play(dep.url, day, processes=processes)
            finally:
                dep.down()
            left[day] = dep.containers()
            per_replica[day] = sorted(sum(1 for _ in open(f)) for f in dep.log_dir.glob("events-*"))
            if day == "replicas":
                stats_c, replicas_log = stats, dep.log_dir
            else:
                stats_d = stats
        timings["days_replicas_s"] = time.perf_counter() - t

        step("checks")
        raw_a, raw_b = events(root / "process" / "logs"), events(root / "container" / "logs")
        raw_c = events(replicas_log)
        ev_a, ev_b, ev_c = without_timing(raw_a), without_timing(raw_b), without_timing(raw_c)
        if not stats_a.equals(stats_b):
            failures.append("(b) container: sessions differ from the process-served day")
        if not ev_a.equals(ev_b):
            failures.append("(b) container: event log lines differ from the process-served day")
        tab_a, tab_b, tab_c = table(raw_a, cfg), table(raw_b, cfg), table(raw_c, cfg)
        if not tab_a.equals(tab_b):
            failures.append("(b) container: the A/B table differs from the process-served one")
        # (c) every request to the other replica: only Redis can keep a session together
        if not stats_c.equals(stats_b):
            failures.append(f"(c) two replicas + Redis: sessions differ from one container "
                            f"({int((stats_c != stats_b).any(axis=1).sum())} episodes)")
        key = ["user", "message", "track", "time", "recommendation", "experiments"]
        if not ev_c.sort_values(key).reset_index(drop=True)[key].equals(ev_b.sort_values(key).reset_index(drop=True)[key]):
            failures.append("(c) two replicas + Redis: the logged requests differ from one container")
        if not tab_c.equals(tab_b):
            failures.append("(c) two replicas + Redis: the A/B table differs from one container's")
        for day, counts in per_replica.items():
            if len(counts) != 2 or min(counts) == 0:
                failures.append(f"({day}) the replicas did not both log: lines per log file {counts}")
            if left[day]:
                failures.append(f"({day}) containers of the deployment left after its down: {left[day]}")
        # nginx's round-robin: one client's requests go to each replica in turn
        counts = per_replica["replicas"]
        if len(counts) == 2 and counts[1] - counts[0] > 0.02 * sum(counts) + 2:
            failures.append(f"(c) nginx did not send each request to the next replica: lines per replica {counts}")
        # (d) the simulator's multi mode: the same sessions, except where two processes played the
        # same user at once (sim/run.py: the service then sees one interleaved session), which
        # only a user with more than one session that day can have; such a session, played
        # differently, shifts the random stream of the rest of its block of episodes
        # (sim.run.BLOCK share one seed), so what must hold is that each block's first
        # differing session is a user's with several sessions
        from sim.run import BLOCK
        differ = (stats_d != stats_b).any(axis=1)
        repeat = stats_b["user"].map(stats_b["user"].value_counts()) > 1
        multi_diff = int(differ.sum())
        firsts = stats_b.index[differ].to_series().groupby((stats_b["episode"] // BLOCK)[differ]).min()
        unexplained = [int(stats_b.loc[i, "episode"]) for i in firsts if not repeat[i]]
        if unexplained:
            failures.append(f"(d) multi x2 against two replicas: blocks first differ at episodes {unexplained}, "
                            "of users with one session that day")
        served = status["models"]["session_aware"]
        # an image passed with --image packed an earlier run's export: its tags differ from this run's
        built_here = not args.image
        if served.get("version") != champion or (built_here and served.get("bentoml_model") != tags["champion"]):
            failures.append(f"GET / of the container names {served}, not the champion v{champion} ({tags['champion']})")

        timings["total_s"] = time.perf_counter() - t_all
        prim = tab_b[tab_b["metric"] == "mean_time_per_session"]
        print(prim[["treatment_name", "control_name", "effect", "lower", "upper"]].to_string(index=False))
        print(json.dumps({"episodes": args.episodes, "seed": args.seed, "image": image, "bento": bento,
                          "events": len(ev_b), "log_lines_per_replica": per_replica,
                          "multi_x2_sessions_differing_from_single (from a user with several sessions to the end of its block)": multi_diff,
                          "served_champion": served, "timings_s": {k: round(v, 1) for k, v in timings.items()}},
                         indent=1))
        for f in failures:
            print(f"FAIL: {f}", flush=True)
        print("[container-test] " + ("all checks passed" if not failures else f"{len(failures)} check(s) failed"),
              flush=True)
        return 1 if failures else 0
    finally:
        if args.keep:
            print(f"[container-test] kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
