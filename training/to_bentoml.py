"""Import a registered model version into the BentoML model store, for the service.

The BentoML model holds what the service reads (docs/architecture.md): `i2i.jsonl` (the
contract's i2i lists), the embedding tables (`context.npy`, `target.npy`,
`target_bias.npy`), and, as labels and metadata, the MLflow model name, version, run id
and the training run's metrics, so a served model can always be traced back to its run.
Configs name it `bentoml:botify-i2i:TAG` (or `:latest`).

    python -m training.to_bentoml --model challenger            # -> botify-i2i:<tag>
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from training import tracking
from training.fit import set_threads
from training.i2i import write_i2i

BENTO_NAME = "botify-i2i"


def import_version(ref: str, bento_name: str = BENTO_NAME, name: str = tracking.MODEL_NAME,
                   k: int = 50, i2i: str | Path | None = None) -> str:
    """Create `bento_name:<new tag>` from a version/alias; returns the tag as a string.

    `i2i`: an already exported file of this version (else the lists are computed here).
    """
    import bentoml
    from mlflow import MlflowClient

    from training.recommend import compute_lists, load_model, trained_cap
    set_threads(purpose="export")
    tracking.setup()
    mv, model = load_model(ref, name)
    ctx, tgt, bias = model.tables()
    run = MlflowClient().get_run(mv.run_id)
    labels = {"mlflow_model": name, "mlflow_version": str(mv.version),
              "mlflow_run_id": mv.run_id, "mlflow_ref": ref,
              "dataset_digest": run.data.tags.get("dataset_digest", "")[:63]}
    metadata = {"mlflow_tracking_uri": tracking.mlflow.get_tracking_uri(),
                "aliases": list(mv.aliases or []),
                "params": dict(run.data.params),
                "metrics": {k_: float(v) for k_, v in run.data.metrics.items()}}
    with bentoml.models.create(bento_name, labels=labels, metadata=metadata,
                               module="training.to_bentoml") as bm:
        out = Path(bm.path)
        if i2i is not None and Path(i2i).is_file():
            shutil.copyfile(i2i, out / "i2i.jsonl")
        else:
            lists = compute_lists(model, k, trained_cap(mv.run_id))
            write_i2i(out / "i2i.jsonl", lists)
        np.save(out / "context.npy", ctx)
        np.save(out / "target.npy", tgt)
        np.save(out / "target_bias.npy", bias)
        tag = str(bm.tag)
    return tag


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=tracking.CHALLENGER, help="alias or version number")
    ap.add_argument("--name", default=tracking.MODEL_NAME, help="registered MLflow model")
    ap.add_argument("--bento-name", default=BENTO_NAME, help="BentoML model name")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--i2i", default=None, help="an exported i2i file of this version to reuse")
    args = ap.parse_args(argv)
    try:
        tag = import_version(args.model, args.bento_name, args.name, args.k, args.i2i)
    except tracking.RegistryError as e:
        print(f"to_bentoml: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"bentoml_tag": tag, "config_value": f"bentoml:{tag}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
