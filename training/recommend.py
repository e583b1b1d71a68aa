"""Entry point `recommend`: a registered model version -> the i2i lists the service reads.

For every catalog track, the top-k other tracks by the model's score (blocked matrix
products + torch.topk), written as JSON lines {"track", "recommendations"} (the contract
in docs/architecture.md) and logged as an artifact of this run.

    python -m training.recommend --model challenger --output data/i2i/treatment.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from training import tracking
from training.fit import set_threads
from formats import lists as list_format
from training.i2i import model_i2i

EXPERIMENT = "botify-training"


load_model = tracking.load_model  # (model version, EmbeddingModel), read without pickle


def trained_cap(run_id: str) -> int:
    """The `i2i_max_per_artist` the model was trained for (0 if none recorded)."""
    from mlflow import MlflowClient
    params = MlflowClient().get_run(run_id).data.params
    return int(params.get("i2i_max_per_artist_resolved", params.get("i2i_max_per_artist", 0)))


def compute_lists(model, k: int, max_per_artist: int) -> np.ndarray:
    return model_i2i(model, k=k, max_per_artist=max_per_artist)


def export(ref: str, output: str | Path, k: int = 50, name: str = tracking.MODEL_NAME,
           log: bool = True, max_per_artist: int | None = None) -> dict:
    """Export and (by default) log the i2i lists of a version; returns a summary.

    `max_per_artist` None: what the model's training config says (`i2i_max_per_artist`).
    """
    import mlflow
    set_threads(purpose="export")
    tracking.setup(EXPERIMENT)
    mv, model = load_model(ref, name)
    cap = trained_cap(mv.run_id) if max_per_artist is None else max_per_artist
    t0 = time.perf_counter()
    lists = compute_lists(model, k, cap)
    compute = time.perf_counter() - t0
    path = list_format.write_jsonl(output, lists, list_format.KEYS["i2i"])
    seconds = time.perf_counter() - t0
    coverage = float(len(np.unique(lists)) / len(lists))
    summary = {"model": name, "ref": ref, "version": str(mv.version), "source_run_id": mv.run_id,
               "output": str(path), "tracks": int(len(lists)), "k": int(lists.shape[1]),
               "coverage": coverage, "max_per_artist": cap, "export_seconds": seconds}
    if log:
        with tracking.step_run(f"recommend {name}@{ref}", entry="recommend"):
            mlflow.set_tags({"botify.entry": "recommend", "source_run_id": mv.run_id})
            tracking.log_params({"model_name": name, "model": ref, "version": mv.version, "k": k,
                               "output": str(output), "max_per_artist": cap})
            mlflow.log_metrics({"i2i_tracks": len(lists), "i2i_coverage": coverage,
                                "topk_seconds": compute, "export_seconds": seconds})
            mlflow.log_artifact(str(path), artifact_path="i2i")
            summary["run_id"] = mlflow.active_run().info.run_id
    return summary


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
            from training.to_bentoml import import_version
            summary["bentoml_tag"] = import_version(args.model, bento_name=args.bentoml,
                                                    name=args.name, i2i=args.output)
    except (tracking.RegistryError, ValueError) as e:
        print(f"recommend: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    from training.lifecycle import run_entry_point
    sys.exit(run_entry_point("recommend", main))  # cancellable: see training/lifecycle.py
