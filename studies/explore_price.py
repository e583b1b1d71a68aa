"""The price of exploring: each loop day's champion lists served by the loop's product policy
with its exploration and without it, on the same sessions.

    python -m studies.explore_price --loop data/loop/<run id>            # every day's champion
    python -m studies.explore_price --loop data/loop/<run id> --seeds 424243 424244 --json out.json

For every day of a finished (or stopped) loop, the champion's version folder (`lists/v<N>`:
its lists, and the exploration table and learned shares beside them) is served in-process
twice on the same sessions of each eval seed (`sim.judge`: every session on its own random
streams): as the loop served it (`promotion.policy` of the run's `loop.yml`) and as the same
SessionAware without exploration (`kind: session_aware`, `explore: 0`). Printed per day: both
as shares of the Random->Oracle headroom and the price (without minus with, paired, ± SE over
users, seeds pooled). The following days' gain is the loop's own trend.

A judge, like `studies.compare_learners`: the Oracle reads the hidden truth; the policies see
only their lists and tables.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from service.recommenders import SessionAware
from sim.judge import figures, paired
from studies.compare_learners import Comparison, headroom_share, pooled
from training.paths import REPO


def champions(loop: Path, policy: str) -> list[tuple[int, str]]:
    """(day, version) of the lists each A/B day served as `policy` x champion."""
    trend = pd.read_csv(loop / "report" / "trend.csv", dtype={"version": str})
    rows = trend[(trend["label"] == f"{policy} × champion")]
    return [(int(r["day"]), str(r["version"])) for _, r in rows.iterrows()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loop", type=Path, required=True, help="a loop run's folder (its loop.yml, report/, lists/)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[424243], help="eval seeds (day 1 of each)")
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--cache", type=Path, default=REPO / "data" / "studies" / "compare",
                    help="the references' cache (shared with studies.compare_learners)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    cfg = yaml.safe_load((args.loop / "loop.yml").read_text())
    name = cfg["promotion"]["policy"]
    policy = dict(cfg["service"]["policies"][name])
    greedy_keys = {f.name for f in dataclasses.fields(SessionAware.Options)}
    greedy = {**{k: v for k, v in policy.items() if k in greedy_keys}, "kind": "session_aware", "explore": 0.0}
    comparison = Comparison({"world": cfg["world"], "judge": {"seeds": args.seeds, "episodes": args.episodes}},
                            args.cache)
    refs = comparison.references()
    base = {s: (figures(refs[s]["random"])["time_per_session"], figures(refs[s]["oracle"])["time_per_session"])
            for s in args.seeds}
    rows = []
    with tempfile.TemporaryDirectory(prefix="botify-price-") as tmp:
        for day, version in champions(args.loop, name):
            i2i = str(args.loop / "lists" / f"v{version}" / "i2i.npy")
            with_x = comparison.serve({**policy, "i2i": i2i}, f"x{day}", Path(tmp))
            without = comparison.serve({**greedy, "i2i": i2i}, f"g{day}", Path(tmp))
            per = [paired(with_x[s], without[s], *base[s]) for s in args.seeds]
            price, se = pooled([p["headroom_diff"] for p in per], [p["headroom_diff_se"] for p in per])
            rows.append({"day": day, "version": version,
                         "with_exploration": float(np.mean([headroom_share(with_x[s], *base[s]) for s in args.seeds])),
                         "without": float(np.mean([headroom_share(without[s], *base[s]) for s in args.seeds])),
                         "price": price, "price_se": se})
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"loop": str(args.loop), "seeds": args.seeds, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
