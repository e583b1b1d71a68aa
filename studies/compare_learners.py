"""Every learner trained on one window of logs and judged side by side on the same sessions.

    python -m studies.compare_learners                  # studies/compare_learners.yml, cache data/studies/compare
    python -m studies.compare_learners --only cooccurrence,als --json out.json

The window (the config's `window`) is made by `python -m studies.learners` the first time
and kept in `--cache` with what does not depend on the learners: each eval seed's
reference sessions (Random, Oracle, anchor_catalog) and the hidden-scene lists. Then every
learner of the config learns lists from the window (`training.learning.learners`, exactly
as a loop's challenger would), and SessionAware over each list plays the same sessions of
every eval seed (`sim.judge`: every session on its own random streams, so every list meets
the same users on the same first tracks). Printed per list: its share of the Random->Oracle
headroom per seed and on average, and its paired difference from the best standard peer
with the standard error over users (seeds pooled as independent samples). References:
`anchor_catalog` (the simulator's anchor policy over catalog lists), SessionAware over
empty lists (its own fallbacks), over the catalog's lists (the layout's fill alone) and
over lists made from the hidden scenes.

This is a judge, like `sim.calibrate`: it reads the world's hidden truth (the scenes, the
Oracle) to score lists and never gives it to a learner, which sees only its window.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from sim.agents import inprocess_agent
from sim.calibrate import agents
from sim.config import load_config
from sim.envs.listener import ListenerEnv
from sim.judge import figures, judge, paired, read_stats, write_stats
from sim.run import Session
from sim.world import World, generate
from training.learning.layout import catalog_lists
from training.learning.learn import check_lists
from training.learning.learners.base import LearnerSpec
from training.learning.window import Window
from training.paths import REPO

CONFIG = REPO / "studies" / "compare_learners.yml"
REFERENCES = ("random", "oracle", "anchor_catalog")


@dataclass
class Judged:
    """A list's sessions on each eval seed and what it cost to learn (None for a reference)."""

    name: str
    kind: str                               # learner | reference
    rows: dict[int, list[Session]]
    seconds: float | None = None


def headroom_share(rows: Sequence[Session], random: float, oracle: float) -> float:
    """(time per session - Random's) / (Oracle's - Random's), time per session as the A/B counts it."""
    return (figures(rows)["time_per_session"] - random) / (oracle - random)


def pooled(diffs: Sequence[float], ses: Sequence[float]) -> tuple[float, float]:
    """The mean of per-seed paired differences and its standard error: the seeds' sessions
    are independent samples, so the variances of their means add (SE = sqrt(sum SE_i^2) / S)."""
    s = len(diffs)
    return float(np.mean(diffs)), float(math.sqrt(sum(e * e for e in ses)) / s)


def compare(judged: list[Judged], refs: dict[int, dict[str, list[Session]]], peers: Sequence[str]) -> list[dict]:
    """One row per list: its headroom share per seed and on average, and its paired difference
    from the best peer (the peer of the highest mean share) with its standard error."""
    seeds = sorted(refs)
    base = {s: (figures(refs[s]["random"])["time_per_session"], figures(refs[s]["oracle"])["time_per_session"])
            for s in seeds}
    shares = {j.name: {s: headroom_share(j.rows[s], *base[s]) for s in seeds} for j in judged}
    by_name = {j.name: j for j in judged}
    best = max(peers, key=lambda p: np.mean(list(shares[p].values())))
    out = []
    for j in judged:
        per = [paired(by_name[best].rows[s], j.rows[s], *base[s]) for s in seeds]
        diff, se = pooled([p["headroom_diff"] for p in per], [p["headroom_diff_se"] for p in per])
        out.append({"lists": j.name, "kind": j.kind, "best_peer": best,
                    **{f"share_{s}": shares[j.name][s] for s in seeds},
                    "share": float(np.mean(list(shares[j.name].values()))), "vs_best_peer": diff,
                    "vs_best_peer_se": se, "learn_seconds": j.seconds})
    return out


def table(rows: list[dict], seeds: Sequence[int]) -> str:
    """The comparison as a Markdown table, learners first, best first."""
    rows = sorted(rows, key=lambda r: (r["kind"] != "learner", -r["share"]))
    best = rows[0]["best_peer"]
    head = (["lists", *(f"seed {s}" for s in seeds), "mean", f"vs {best} (paired, ± SE)", "learn s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        name = r["lists"] if r["kind"] == "learner" else f"*{r['lists']}*"
        vs = "–" if r["lists"] == best else f"{r['vs_best_peer']:+.3f} ± {r['vs_best_peer_se']:.3f}"
        secs = "" if r["learn_seconds"] is None else f"{r['learn_seconds']:.0f}"
        lines.append("| " + " | ".join([name, *(f"{r[f'share_{s}']:.3f}" for s in seeds), f"{r['share']:.3f}",
                                        vs, secs]) + " |")
    return "\n".join(lines)


class Comparison:
    def __init__(self, cfg: dict, cache: Path) -> None:
        self.cfg, self.cache = cfg, cache
        self.sim = load_config(REPO / cfg["world"])
        self.world = World.load(self.sim.world.dir)
        self.env = ListenerEnv(self.world, self.sim.session)
        self.seeds = [int(s) for s in cfg["judge"]["seeds"]]
        self.episodes = int(cfg["judge"]["episodes"])
        self.k = int(cfg.get("k", 50))

    def stamp(self, what: dict) -> dict:
        """What a cached part was made from: the world, the session rules and `what`."""
        return {"world": self.sim.world.fingerprint(), "session": repr(self.sim.session), **what}

    def cached(self, folder: Path, what: dict) -> bool:
        f = folder / "made-from.json"
        return f.is_file() and json.loads(f.read_text()) == json.loads(json.dumps(self.stamp(what)))

    def window(self) -> Window:
        """The window's logs: `studies.learners` run once into the cache."""
        w = self.cfg["window"]
        folder = self.cache / "window"
        if not self.cached(folder, {"study": w["study"]}):
            print(f"[window] python -m studies.learners {' '.join(w['study'])} --workdir {folder} "
                  f"(once; later runs reuse it)", flush=True)
            subprocess.run([sys.executable, "-m", "studies.learners", "--config", str(REPO / self.cfg["world"]),
                            *w["study"], "--workdir", str(folder)], cwd=REPO, check=True)
            (folder / "made-from.json").write_text(json.dumps(self.stamp({"study": w["study"]})))
        return Window(tuple(str(folder / f"day{d}") for d in w["days"]), self.sim.world.dir, int(w["seed"]),
                      tuple(w["days"]))

    def references(self) -> dict[int, dict[str, list[Session]]]:
        """Random, the Oracle and anchor_catalog on each seed's sessions (cached: they depend on the world only)."""
        out = {}
        for seed in self.seeds:
            folder = self.cache / "references" / str(seed)
            what = {"seed": seed, "episodes": self.episodes}
            if not self.cached(folder, what):
                print(f"[references] seed {seed}: {', '.join(REFERENCES)} on {self.episodes} sessions (once)", flush=True)
                made = agents(self.env, self.world, 100)
                for name in REFERENCES:
                    write_stats(folder / f"{name}.csv", judge(self.env, made[name][1](), self.episodes, seed))
                (folder / "made-from.json").write_text(json.dumps(self.stamp(what)))
            out[seed] = {name: read_stats(folder / f"{name}.csv") for name in REFERENCES}
        return out

    def scene_lists(self) -> np.ndarray:
        """Lists from the hidden scenes (the judge's reference only; cached)."""
        from studies.learners import scene_lists
        folder = self.cache / "scene-lists"
        if not self.cached(folder, {"k": self.k}):
            truth = generate(self.sim.world)
            lists = scene_lists(self.world, np.asarray(truth["track_scene"]),
                                np.array([r["popularity"] for r in truth["catalog"]]), k=self.k)
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / "lists.npy", lists, allow_pickle=False)
            (folder / "made-from.json").write_text(json.dumps(self.stamp({"k": self.k})))
        return np.load(folder / "lists.npy", allow_pickle=False)

    def served(self, lists: np.ndarray, name: str, work: Path) -> dict[int, list[Session]]:
        """SessionAware (the config's policy) over `lists`, in-process, on every seed's sessions."""
        path = work / f"{name}.npy"
        np.save(path, np.asarray(lists, dtype=np.int32), allow_pickle=False)
        return self.serve({**self.cfg["judge"]["policy"], "i2i": str(path)}, name, work)

    def serve(self, spec: dict, name: str, work: Path) -> dict[int, list[Session]]:
        """The recommender `spec` (a service config entry), in-process, on every seed's sessions."""
        svc = {"catalog": str(self.sim.world.dir / "public" / "tracks.json"), "seed": 42, "event_log": False,
               "session_store": {"kind": "memory", "ttl_seconds": 1800}, "recommenders": {"sa": spec},
               "experiments": [{"name": "JUDGE", "arms": {"C": "sa"}}]}
        config = work / f"{name}.yml"
        config.write_text(yaml.safe_dump(svc))
        out = {}
        for seed in self.seeds:
            agent = inprocess_agent("service.botify:load", [str(config)])
            try:
                out[seed] = judge(self.env, agent, self.episodes, seed)
            finally:
                agent.close()
        return out

    def run(self, only: set[str] | None, work: Path) -> tuple[list[dict], dict[str, float]]:
        t0 = time.perf_counter()
        window = self.window()
        refs = self.references()
        scenes = self.scene_lists()
        timing = {"prepare": time.perf_counter() - t0}
        judged = []
        peers = list(self.cfg["peers"])
        for raw in self.cfg["learners"]:
            spec = LearnerSpec(raw["name"], raw.get("learner", "embedding"), raw.get("config"),
                               dict(raw.get("overrides") or {}))
            if only and spec.name not in only and spec.name not in peers:
                continue
            t = time.perf_counter()
            learned = spec.make(REPO).learn(window, self.k, work / spec.name)
            seconds = time.perf_counter() - t
            check_lists(learned, window.catalog.size, self.k, spec.name)
            print(f"[learn] {spec.name}: {seconds:.0f}s", flush=True)
            judged.append(Judged(spec.name, "learner", self.served(learned.lists, spec.name, work), seconds))
        timing["learn_and_judge_learners"] = time.perf_counter() - t0 - timing["prepare"]
        n = window.catalog.size
        for name, lists in (("empty lists (SessionAware's fallbacks)", np.full((n, self.k), -1, np.int32)),
                            ("catalog lists (the layout's fill)", catalog_lists(window.catalog, self.k)),
                            ("hidden-scene lists (judge only)", scenes)):
            judged.append(Judged(name, "reference", self.served(lists, f"ref{len(judged)}", work)))
        judged.append(Judged("anchor_catalog (simulator)", "reference", {s: refs[s]["anchor_catalog"] for s in self.seeds}))
        rows = compare(judged, refs, peers)
        timing["total"] = time.perf_counter() - t0
        return rows, timing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=CONFIG, help="what to train and how to judge (YAML)")
    ap.add_argument("--cache", type=Path, default=REPO / "data" / "studies" / "compare",
                    help="the window's logs, the references and the scene lists are kept here")
    ap.add_argument("--only", default="", help="comma-separated learner names (the peers are always trained)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows and timings here")
    args = ap.parse_args(argv)
    if not args.config.is_file():
        ap.error(f"config {args.config} not found (the default is {CONFIG.relative_to(REPO)})")
    cfg = yaml.safe_load(args.config.read_text())
    from training.learning.fit import set_threads
    set_threads(1)
    comparison = Comparison(cfg, args.cache)
    with tempfile.TemporaryDirectory(prefix="botify-compare-") as tmp:
        rows, timing = comparison.run({s for s in args.only.split(",") if s} or None, Path(tmp))
    print(table(rows, comparison.seeds))
    print(f"{comparison.episodes} sessions per seed; seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timing.items()))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "timing": timing, "config": cfg}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
