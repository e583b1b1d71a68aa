"""The one export step: a registered model version → a BentoML model the service serves.

The BentoML model holds what the service reads (docs/architecture.md): the i2i lists as an
int32 table `i2i.npy` (memory-mapped at start-up: no parse) and as the contract's JSON lines
`i2i.jsonl`, and beside them a learner's `policy.json` and `learner.json` or an embedding
model's tables (`context.npy`, `target.npy`, `target_bias.npy`); as
labels, its lineage: MLflow model name, version, run id, the training data's digest and the
role it plays (`champion`, `baseline`); as metadata the training run's params and metrics.
Configs name it `bentoml:NAME:TAG` (or `:latest`); the service declares the models its config
names, so `bentoml build` packs them, and `GET /` reports each served model's name, version
and run id. By default: `@champion` into `botify-champion-lists`, what the product serves
(that name holds `@champion`'s lists only).

    python -m training.jobs.to_bentoml                                  # @champion -> botify-champion-lists
    python -m training.jobs.to_bentoml --model 3 --bento-name my-lists  # any version, any other name
"""
from __future__ import annotations

import argparse
import json
import sys

from training.registry import tracking
from training.registry.export import SERVED, import_version


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=tracking.CHAMPION, help="alias or version number")
    ap.add_argument("--name", default=tracking.MODEL_NAME, help="registered MLflow model")
    ap.add_argument("--bento-name", default=SERVED["champion"], help="BentoML model name")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--i2i", default=None, help="an exported i2i file of this version to reuse")
    ap.add_argument("--role", default="", help="the role it serves (a label); default: the name's role, if any")
    args = ap.parse_args(argv)
    role = args.role or {v: k for k, v in SERVED.items()}.get(args.bento_name, "")
    try:
        tracking.setup()
        if args.bento_name == SERVED["champion"]:   # what the product serves: the champion's, never another's
            version = str(tracking.resolve_version(args.model, args.name).version)
            champion = tracking.champion_version(args.name)
            if version != champion:
                raise ValueError(f"{args.bento_name} holds `{args.name}@{tracking.CHAMPION}`'s lists "
                                 f"({f'version {champion}' if champion else 'none yet'}), not version {version}'s: "
                                 f"name another BentoML model with --bento-name")
        tag = import_version(args.model, args.bento_name, args.name, args.k, args.i2i, role)
    except (tracking.RegistryError, ValueError, FileNotFoundError) as e:
        print(f"to_bentoml: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"bentoml_tag": tag, "config_value": f"bentoml:{tag}"}))
    return 0


if __name__ == "__main__":
    from training.jobs.lifecycle import run_entry_point
    sys.exit(run_entry_point("to_bentoml", main))  # cancellable: see training/jobs/lifecycle.py
