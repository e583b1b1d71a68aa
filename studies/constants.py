"""SessionAware's constants learned from the logs against the configured ones, on the same sessions.

    python -m studies.constants --log data/studies/w/day0 --log data/studies/w/day1 --log data/studies/w/day2 \\
        --lists data/studies/w/lists-day3.npy [--config sim/config/env.yml] [--seeds 424243 424244]

The window's logs give the estimates (`training.learning.policy_params`, as every learner's
version carries them); the lists and those estimates are written as a version folder
(`formats.learned`: i2i.npy + policy.json) and served in-process by the service itself, so a
learnable option reaches the recommender the way production's does (left unset in the
config); an estimate the service does not read (none today) would be set in the config. Variants, each SessionAware over the same lists on the same sessions
(`--episodes` of day 1 of each eval seed, no exploration): `configured` (the Options'
defaults), `learned` (all three estimates), `learned discount`, `learned thresholds` (the
other two). Each is printed as a share of the Random->Oracle headroom and as a paired
difference from `configured` (SE over users, seeds pooled).

A judge, like `sim.calibrate`: the Oracle reads the hidden truth; the estimates never do.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from formats import learned as learned_format
from service.recommenders import SessionAware
from service.recommenders.options import learnable
from sim.agents import inprocess_agent
from sim.calibrate import agents
from sim.config import load_config
from sim.envs.listener import ListenerEnv
from sim.judge import figures, judge, paired
from sim.world import World
from studies.compare_learners import headroom_share, pooled
from training.learning import policy_params
from training.learning.window import Window

POLICY = {"kind": "session_aware", "top": 100, "listed_artists": "any", "new_artists": "session"}


def defaults() -> dict:
    """The Options' defaults of the estimated constants: what the configured variant serves."""
    fields = {f.name: f.default for f in dataclasses.fields(SessionAware.Options)}
    return {name: fields[name] for name in policy_params.NAMES}


def variants(learned: dict) -> dict[str, dict]:
    """Name -> what the config sets. A learnable option left unset comes from policy.json (the
    service's own path); an estimate the service does not read is set in the config."""
    d = defaults()
    read = set(learnable(SessionAware.Options))
    def with_learned(names: set[str]) -> dict:
        return {k: (learned[k] if k in names and k in learned else v) for k, v in d.items()
                if not (k in names and k in read)}
    return {"configured": d, "learned": with_learned(set(d)), "learned discount": with_learned({"discount"}),
            "learned thresholds": with_learned({"first_artist_prior", "fresh_start"})}


def serve(version: Path, options: dict, world_dir: Path, work: Path, name: str, policy: dict):
    cfg = {"catalog": str(world_dir / "public" / "tracks.json"), "seed": 42, "event_log": False,
           "session_store": {"kind": "memory", "ttl_seconds": 1800},
           "recommenders": {"sa": {**policy, **options, "i2i": str(version / learned_format.TABLE)}},
           "experiments": [{"name": "JUDGE", "arms": {"C": "sa"}}]}
    path = work / f"{name.replace(' ', '-')}.yml"
    path.write_text(yaml.safe_dump(cfg))
    return inprocess_agent("service.botify:load", [str(path)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", action="append", required=True, help="a day's event log folder of the window (repeat)")
    ap.add_argument("--lists", type=Path, required=True, help="the i2i lists served (int32 .npy)")
    ap.add_argument("--config", default="sim/config/env.yml", help="the simulator's config (world + listeners)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[424243, 424244])
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--policy", action="append", default=[], metavar="KEY=VALUE", help="another SessionAware option")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    from training.learning.fit import set_threads
    set_threads(1)
    sim = load_config(args.config)
    world = World.load(sim.world.dir)
    env = ListenerEnv(world, sim.session)
    window = Window(tuple(args.log), sim.world.dir)
    est = window.policy_estimates
    learned = policy_params.policy(est)
    print(json.dumps({"estimates": {k: [round(e.value, 4), e.count] for k, e in est.items()}, "policy": learned}),
          flush=True)
    policy = {**POLICY, **{k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.policy)}}
    made = agents(env, world, 100)
    refs = {s: {r: figures(judge(env, made[r][1](), args.episodes, s))["time_per_session"] for r in ("random", "oracle")}
            for s in args.seeds}
    rows: dict[str, dict[int, list]] = {}
    with tempfile.TemporaryDirectory(prefix="botify-constants-") as tmp:
        version = learned_format.write(Path(tmp) / "version", np.load(args.lists, allow_pickle=False), policy=learned,
                                       learner={"name": "study", "learner": "lists", "config": {},
                                                "window": {"logs": args.log}, "figures": {}})
        for name, options in variants(learned).items():
            rows[name] = {}
            for s in args.seeds:
                agent = serve(version, options, sim.world.dir, Path(tmp), name, policy)
                try:
                    rows[name][s] = judge(env, agent, args.episodes, s)
                finally:
                    agent.close()
    out = []
    print("| constants | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean | vs configured (paired, ± SE) |")
    print("|---|" + "---|" * (len(args.seeds) + 2))
    for name in rows:
        shares = [headroom_share(rows[name][s], refs[s]["random"], refs[s]["oracle"]) for s in args.seeds]
        per = [paired(rows["configured"][s], rows[name][s], refs[s]["random"], refs[s]["oracle"]) for s in args.seeds]
        diff, se = pooled([p["headroom_diff"] for p in per], [p["headroom_diff_se"] for p in per])
        out.append({"variant": name, "shares": shares, "vs_configured": diff, "se": se})
        print(f"| {name} | " + " | ".join(f"{x:.3f}" for x in shares) + f" | {np.mean(shares):.3f} | "
              + ("–" if name == "configured" else f"{diff:+.3f} ± {se:.3f}") + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"estimates": {k: dataclasses.asdict(e) for k, e in est.items()},
                                         "policy": learned, "rows": out, "args": vars(args) | {
                                             "lists": str(args.lists), "json": str(args.json)}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
