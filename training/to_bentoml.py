"""The one export step: a registered model version → a BentoML model the service serves.

The BentoML model holds what the service reads (docs/architecture.md): the i2i lists as an
int32 table `i2i.npy` (memory-mapped at start-up: no parse) and as the contract's JSON lines
`i2i.jsonl`, the embedding tables (`context.npy`, `target.npy`, `target_bias.npy`); as
labels, its lineage: MLflow model name, version, run id, the training data's digest and the
role it plays (e.g. `treatment`); as metadata the training run's params and metrics. Configs
name it `bentoml:NAME:TAG` (or `:latest`); `bentoml build` packs the models bentofile.yaml
lists, and `GET /` reports each served model's name, version and run id.

    python -m training.to_bentoml --model champion --bento-name botify-i2i-treatment --role treatment
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from formats import lists as list_format
from training import tracking
from training.fit import set_threads

BENTO_NAME = "botify-i2i"


def import_version(ref: str, bento_name: str = BENTO_NAME, name: str = tracking.MODEL_NAME,
                   k: int = 50, i2i: str | Path | None = None, role: str = "") -> str:
    """Create `bento_name:<new tag>` from a version or alias; returns the tag as a string.

    `i2i`: the lists already exported from this very version (else they are computed here,
    with the artist cap the model was trained for). The model is read without pickle.
    """
    import bentoml
    from mlflow import MlflowClient

    from training.recommend import compute_lists, load_model, trained_cap
    set_threads(purpose="export")
    tracking.setup()
    mv, model = load_model(ref, name)
    ctx, tgt, bias = model.tables()
    if i2i is not None:
        if not Path(i2i).is_file():
            raise FileNotFoundError(f"i2i file {i2i} not found (export it with `mlflow run . -e recommend`)")
        try:  # checked as the service will check it: one list per track of the model's catalog
            table = list_format.read_lists(i2i, "track", model.n_tracks, model.n_tracks)
        except list_format.FormatError as e:
            raise ValueError(f"i2i file {i2i}: {e} (the model has {model.n_tracks} tracks)") from None
    else:
        table = compute_lists(model, k, trained_cap(mv.run_id)).astype(list_format.DTYPE)
    run = MlflowClient().get_run(mv.run_id)
    labels = {"mlflow_model": name, "mlflow_version": str(mv.version), "mlflow_run_id": mv.run_id,
              "mlflow_ref": str(ref), "dataset_digest": run.data.tags.get("dataset_digest", "")[:63]}
    if role:
        labels["role"] = role
    metadata = {"mlflow_tracking_uri": tracking.mlflow.get_tracking_uri(),
                "aliases": list(mv.aliases or []), "tracks": int(model.n_tracks), "k": int(table.shape[1]),
                "params": dict(run.data.params),
                "metrics": {k_: float(v) for k_, v in run.data.metrics.items()}}
    with bentoml.models.create(bento_name, labels=labels, metadata=metadata,
                               module="training.to_bentoml") as bm:
        out = Path(bm.path)
        # the same lists in both of the format's forms (formats.lists), checked before writing
        list_format.write_table(out / list_format.TABLES["i2i"], table, model.n_tracks)
        list_format.write_jsonl(out / list_format.FILES["i2i"], table, "track")
        np.save(out / "context.npy", ctx, allow_pickle=False)
        np.save(out / "target.npy", tgt, allow_pickle=False)
        np.save(out / "target_bias.npy", bias, allow_pickle=False)
        tag = str(bm.tag)
    return tag


def deploy(versions: dict[str, str], targets: dict[str, str], name: str = tracking.MODEL_NAME,
           i2i: dict[str, str | Path] | None = None, k: int = 50) -> dict[str, str]:
    """Export each role's registry version into the BentoML model its target names.

    `versions`: role → version or alias (e.g. {"treatment": "champion", "control": "3"});
    `targets`: role → BentoML model name (the promotion config's `deploy`, the names the
    service configs and bentofile.yaml use with `:latest`). Every role is exported before
    this returns, so a caller that moves an alias afterwards never leaves it unserved.
    Returns role → the new BentoML tag.
    """
    missing = sorted(set(targets) - set(versions))
    if missing:
        raise ValueError(f"deploy names role(s) {missing}; the models are {sorted(versions)}")
    return {role: import_version(versions[role], bento_name=target, name=name, k=k,
                                 i2i=(i2i or {}).get(role), role=role)
            for role, target in targets.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=tracking.CHALLENGER, help="alias or version number")
    ap.add_argument("--name", default=tracking.MODEL_NAME, help="registered MLflow model")
    ap.add_argument("--bento-name", default=BENTO_NAME, help="BentoML model name")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--i2i", default=None, help="an exported i2i file of this version to reuse")
    ap.add_argument("--role", default="", help="the role it serves (a label), e.g. treatment")
    args = ap.parse_args(argv)
    try:
        tag = import_version(args.model, args.bento_name, args.name, args.k, args.i2i, args.role)
    except (tracking.RegistryError, ValueError, FileNotFoundError) as e:
        print(f"to_bentoml: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"bentoml_tag": tag, "config_value": f"bentoml:{tag}"}))
    return 0


if __name__ == "__main__":
    from training.lifecycle import run_entry_point
    sys.exit(run_entry_point("to_bentoml", main))  # cancellable: see training/lifecycle.py
