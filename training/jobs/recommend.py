"""Entry point `recommend`: a registered model version -> the i2i lists the service reads.

For every catalog track, the top-k other tracks by the model's score (blocked matrix
products + torch.topk), written as JSON lines {"track", "recommendations"} (the contract
in docs/architecture.md) and logged as an artifact of this run.

    python -m training.jobs.recommend --model challenger --output data/i2i/treatment.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys

from training.registry import tracking
from training.registry.export import export, import_version


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=tracking.CHALLENGER, help="alias (challenger, champion) or version number")
    ap.add_argument("--name", default=tracking.MODEL_NAME, help="registered model name")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--output", default="data/i2i/i2i.jsonl")
    ap.add_argument("--max-per-artist", type=int, default=-1,
                    help="at most this many tracks of one artist per list (0: no cap; -1: the model's training config)")
    ap.add_argument("--bentoml", default="", help="also import into the BentoML store under this name ('': don't)")
    args = ap.parse_args(argv)
    if args.k < 1:
        print("recommend: --k must be at least 1", file=sys.stderr)
        return 2
    try:
        summary = export(args.model, args.output, k=args.k, name=args.name,
                         max_per_artist=None if args.max_per_artist < 0 else args.max_per_artist)
        if args.bentoml:
            summary["bentoml_tag"] = import_version(args.model, bento_name=args.bentoml,
                                                    name=args.name, i2i=args.output)
    except (tracking.RegistryError, ValueError) as e:
        print(f"recommend: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    from training.jobs.lifecycle import run_entry_point
    sys.exit(run_entry_point("recommend", main))  # cancellable: see training/jobs/lifecycle.py
