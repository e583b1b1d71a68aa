"""Which learner finds the hidden scenes from the service's own logs, and how fast: the
measurement behind `training/config/contrast.yml` (training/README.md).

    python -m studies.learners --recipe training/config/contrast.yml --days 6
    python -m studies.learners --recipe training/config/session.yml --days 4 --set duels=3

A fast, in-process stand-in for the daily loop that always deploys the newest lists: day 0
is the cold start (Random, StickyArtist, TopPop); every later day the recipe is trained on
the last `--window` days of logs, its i2i lists are served for a day (Random, Contextual and
two SessionAware arms with `--explore`, in-process through the service's own recommenders),
and the day's log joins the window. Study day d plays day d + 1 of `--seed` (the simulator's
day rule). Each day prints SessionAware over that day's lists on the same `--eval-episodes`
sessions (day 1 of `--eval-seed`, no exploration; the same sessions for every list, none of
the traffic the learner's logs came from), with `listed_artists` same_genre and any, as a
share of the Random->Oracle headroom (`sim.calibrate` on the same sessions) and as a paired
difference from `--reference` on those sessions (`<figure>_vs_<reference>`: difference of
headroom shares and its standard error over users), and how many of the lists' other-artist
tracks are from the anchor's hidden scene. `--scene-lists` adds SessionAware over lists made
from the hidden scenes themselves: what a learner that found every scene would serve.

This is a judge, like `sim.calibrate`: it reads the world's hidden truth (the scenes, to
score lists) and never gives it to the learner, which sees the public catalog and the logs.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from sim.agents import inprocess_agent
from sim.calibrate import REFERENCE_IDS, play_references
from sim.config import load_config
from sim.envs.listener import ListenerEnv
from sim.judge import figures, judge, paired
from sim.run import Session
from sim.world import World, generate, write
from training.learning.fit import fit, set_threads
from training.learning.i2i import model_i2i
from training.learning.train import TrainConfig, build_model, fit_config, prepare

COLD_START = ({"random": {"kind": "random"}, "sticky": {"kind": "sticky_artist"}, "toppop": {"kind": "toppop"}},
              {"C": "random", "T1": "sticky", "T2": "toppop"})


def scene_share(lists: np.ndarray, artist: np.ndarray, scene: np.ndarray) -> float:
    """Share of the lists' other-artist tracks that are from the anchor's hidden scene."""
    t = np.maximum(lists, 0)
    other = (lists >= 0) & (artist[t] != artist[:, None])
    return float(((scene[t] == scene[:, None]) & other).sum() / max(int(other.sum()), 1))


def scene_lists(world: World, scene: np.ndarray, popularity: np.ndarray, k: int = 50,
                same_tag: bool = False) -> np.ndarray:
    """For each track: 3 more of its artist, then 2 of each other artist of its hidden scene
    by the artist's popularity (of the anchor's public genre tag only with `same_tag`)."""
    artist, genre = world.track_artist, world.track_genre
    n_art = int(artist.max()) + 1
    by_artist = [np.flatnonzero(artist == a) for a in range(n_art)]
    by_artist = [b[np.argsort(-popularity[b], kind="stable")] for b in by_artist]
    a_pop = np.bincount(artist, weights=popularity, minlength=n_art)
    a_scene = np.zeros(n_art, dtype=np.int64)
    a_scene[artist] = scene
    a_genre = np.array([np.bincount(genre[b]).argmax() for b in by_artist])
    mates = {s: sorted(np.flatnonzero(a_scene == s).tolist(), key=lambda a: -a_pop[a]) for s in np.unique(a_scene)}
    out = np.full((len(artist), k), -1, dtype=np.int32)
    for t in range(len(artist)):
        a = artist[t]
        row = [x for x in by_artist[a][:4].tolist() if x != t][:3]
        for b in mates[a_scene[a]]:
            if b != a and (not same_tag or a_genre[b] == genre[t]):
                row.extend(by_artist[b][:2].tolist())
            if len(row) >= k:
                break
        out[t, :min(len(row), k)] = row[:k]
    return out


class Study:
    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.args, self.out = args, out
        cfg = load_config(args.config)
        write(cfg.world)
        self.cfg, self.world_dir = cfg, cfg.world.dir
        self.world = World.load(cfg.world.dir)
        self.env = ListenerEnv(self.world, cfg.session)
        truth = generate(cfg.world)
        self.scene = np.asarray(truth["track_scene"])
        self.popularity = np.array([r["popularity"] for r in truth["catalog"]])
        figs, self.ref_rows = play_references(self.world, cfg.session, args.eval_episodes, args.eval_seed, 100)
        self.random = figs["random"]["time_per_session"]
        self.oracle = figs["oracle"]["time_per_session"]
        self.refs = {k: round(v["headroom_share"], 3) for k, v in figs.items()}
        self.policy = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.policy)}

    def share(self, time_per_session: float) -> float:
        return (time_per_session - self.random) / (self.oracle - self.random)

    def judged(self, name: str, rows: list[Session]) -> dict:
        """A judged figure: its share of the headroom and its paired difference from the reference."""
        ref = self.args.reference
        p = paired(self.ref_rows[ref], rows, self.random, self.oracle)
        return {name: round(self.share(figures(rows)["time_per_session"]), 3),
                f"{name}_vs_{ref}": [round(p["headroom_diff"], 3), round(p["headroom_diff_se"], 3)]}

    def service(self, name: str, recommenders: dict, arms: dict, log: Path | None) -> Path:
        cfg = {"catalog": str(self.world_dir / "public" / "tracks.json"), "seed": 42,
               "event_log": {"dir": str(log)} if log else False,
               "session_store": {"kind": "memory", "ttl_seconds": 1800},
               "recommenders": recommenders, "experiments": [{"name": "STUDY", "arms": arms}]}
        path = self.out / f"{name}.yml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def play(self, config: Path, episodes: int, seed: int, day: int) -> list[Session]:
        agent = inprocess_agent("service.botify:load", [str(config)])
        try:
            return judge(self.env, agent, episodes, seed, day)
        finally:
            agent.close()

    def served(self, lists: Path, listed: str) -> list[Session]:
        """SessionAware over ``lists`` on the judge's sessions, one row per session."""
        sa = {"kind": "session_aware", "i2i": str(lists), "listed_artists": listed, **self.policy}
        cfg = self.service(f"eval-{lists.stem}-{listed}", {"sa": sa}, {"C": "sa"}, None)
        return self.play(cfg, self.args.eval_episodes, self.args.eval_seed, 1)

    def judge_lists(self, lists: Path) -> dict:
        out: dict = {}
        for listed in ("same_genre", "any"):
            out |= self.judged(f"served_{listed}", self.served(lists, listed))
        return out

    def run(self) -> list[dict]:
        a = self.args
        rows = []
        if a.scene_lists:
            for tag in (False, True):
                path = self.out / f"scene-lists{'-tag' if tag else ''}.npy"
                np.save(path, scene_lists(self.world, self.scene, self.popularity, same_tag=tag))
                rows.append({"day": "scene lists" + (" (anchor's tag)" if tag else ""), **self.judge_lists(path)})
                print(json.dumps(rows[-1]), flush=True)
        self.play(self.service("day0", *COLD_START, self.out / "day0"), a.episodes, a.seed, 1)
        overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in a.set)}
        recipe = TrainConfig.from_yaml(a.recipe, **overrides)
        for day in range(1, a.days + 1):
            window = [str(self.out / f"day{d}") for d in range(max(0, day - a.window), day)]
            t0 = time.perf_counter()
            data = prepare(recipe, window, str(self.world_dir))
            model = build_model(recipe, data.catalog)
            fit(model, data.split.train, data.split.val, fit_config(recipe, progress=False),
                duels=data.duels[:2] if data.duels is not None else None)
            lists = model_i2i(model, k=a.k, max_per_artist=recipe.i2i_max_per_artist).astype(np.int32)
            path = self.out / f"lists-day{day}.npy"
            np.save(path, lists)
            seconds = time.perf_counter() - t0
            sa = {"kind": "session_aware", "i2i": str(path), "explore": a.explore, "listed_artists": a.listed,
                  **self.policy}
            recs = {"random": {"kind": "random"}, "contextual": {"kind": "contextual", "i2i": str(path)},
                    "sa": sa, "sa2": dict(sa)}
            self.play(self.service(f"day{day}", recs, {"C": "random", "T1": "contextual", "T2": "sa", "T3": "sa2"},
                                   self.out / f"day{day}"), a.episodes, a.seed, day + 1)
            rows.append({"day": day, "pairs": len(data.pairs),
                         "duels": len(data.duels[0]) if data.duels is not None else 0,
                         "train_seconds": round(seconds, 1),
                         "scene_share": round(scene_share(lists, self.world.track_artist, self.scene), 3),
                         **self.judge_lists(path)})
            print(json.dumps(rows[-1]), flush=True)
        return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="sim/config/env.yml", help="simulator config (the world)")
    ap.add_argument("--recipe", default="training/config/contrast.yml", help="training config")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    ap.add_argument("--days", type=int, default=6)
    ap.add_argument("--window", type=int, default=3, help="days of logs each day's training reads")
    ap.add_argument("--episodes", type=int, default=2500, help="episodes per played day")
    ap.add_argument("--eval-episodes", type=int, default=1000, help="sessions each day's lists are judged on")
    ap.add_argument("--explore", type=float, default=0.05, help="SessionAware's logged exploration share")
    ap.add_argument("--listed", default="same_genre", choices=("same_genre", "any"),
                    help="SessionAware's listed_artists on the played days")
    ap.add_argument("--policy", action="append", default=[], metavar="KEY=VALUE",
                    help="another SessionAware option, on the played days and in the judging (e.g. new_artists=session)")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--seed", type=int, default=424242, help="the simulator's seed of the played days")
    ap.add_argument("--eval-seed", type=int, default=None,
                    help="seed of the judged sessions (day 1 of it; default: --seed + 1)")
    ap.add_argument("--reference", default="anchor_catalog",
                    help="the sim.calibrate reference every judged figure is paired with (default anchor_catalog)")
    ap.add_argument("--scene-lists", action="store_true", help="also judge lists made from the hidden scenes")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("--workdir", type=Path, default=None, help="keep logs and lists here (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.days < 1 or args.window < 1 or args.episodes < 1 or args.eval_episodes < 2:
        ap.error("--days, --window, --episodes must be >= 1 and --eval-episodes >= 2")
    if args.reference not in REFERENCE_IDS:
        ap.error(f"--reference must be one of {', '.join(REFERENCE_IDS)} (got {args.reference!r})")
    args.eval_seed = args.seed + 1 if args.eval_seed is None else args.eval_seed
    set_threads(1)
    with tempfile.TemporaryDirectory(prefix="botify-study-") as tmp:
        out = args.workdir or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        study = Study(args, out)
        print(json.dumps({"references": study.refs}), flush=True)
        rows = study.run()
    if args.json:
        args.json.write_text(json.dumps({"references": study.refs, "args": vars(args) | {"json": str(args.json),
                                         "workdir": str(args.workdir)}, "days": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
