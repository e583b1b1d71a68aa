"""The one export step: a registered version's i2i lists, to a file or into the BentoML store.

`export` writes an embedding model's lists as the contract's JSON lines (a `recommend` step run);
`import_version` makes a BentoML model the service serves from any version, a learner's or an
embedding model's (the lists as an int32 table and JSON lines, what the version keeps beside
them, its lineage as labels).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from formats import learned as learned_format
from formats import lists as list_format
from training.learning.fit import set_threads
from training.learning.i2i import model_i2i
from training.registry import tracking, versions
from training.runlog import log_params

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

    A learner's version gives its own lists (their first `k` places); an embedding model's
    are computed with `max_per_artist` (None: what its training config says).
    """
    import mlflow
    set_threads(purpose="export")
    tracking.setup(EXPERIMENT)
    mv = tracking.resolve_version(ref, name)
    t0 = time.perf_counter()
    if versions.is_learned(mv):
        cap = None
        lists = np.asarray(learned_format.read(versions.fetch(mv.version, name)).lists)[:, :k]
    else:
        _, model = load_model(mv.version, name)
        cap = trained_cap(mv.run_id) if max_per_artist is None else max_per_artist
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
            log_params({"model_name": name, "model": ref, "version": mv.version, "k": k,
                        "output": str(output), "max_per_artist": "" if cap is None else cap})
            mlflow.log_metrics({"i2i_tracks": len(lists), "i2i_coverage": coverage,
                                "topk_seconds": compute, "export_seconds": seconds})
            mlflow.log_artifact(str(path), artifact_path="i2i")
            summary["run_id"] = mlflow.active_run().info.run_id
    return summary


# The BentoML models the service serves, by role: what `@champion` serves (the product), and
# the status quo an experiment compared it with. Jobs name them in `promotion.deploy`, service
# configs as `bentoml:NAME:latest`.
SERVED = {"champion": "botify-champion-lists", "baseline": "botify-baseline-lists"}


def import_version(ref: str, bento_name: str = SERVED["champion"], name: str = tracking.MODEL_NAME,
                   k: int = 50, i2i: str | Path | None = None, role: str = "") -> str:
    """Create `bento_name:<new tag>` from a version or alias; returns the tag as a string.

    A learner's version (`formats.learned`) brings its own lists; an embedding model's are
    computed here with the artist cap it was trained for. `i2i`: the lists already served from
    this very version (checked as the service checks them). Nothing is read with pickle.
    """
    import bentoml
    from mlflow import MlflowClient

    set_threads(purpose="export")
    tracking.setup()
    mv = tracking.resolve_version(ref, name)
    table, n_tracks, extra, policy = _version_lists(mv, name, k, i2i)
    run = MlflowClient().get_run(mv.run_id)
    labels = {"mlflow_model": name, "mlflow_version": str(mv.version), "mlflow_run_id": mv.run_id,
              "mlflow_ref": str(ref), "dataset_digest": run.data.tags.get("dataset_digest", "")[:63]}
    if role:
        labels["role"] = role
    metadata = {"mlflow_tracking_uri": tracking.safe_uri(tracking.mlflow.get_tracking_uri()),
                "aliases": list(mv.aliases or []), "tracks": n_tracks, "k": int(table.shape[1]),
                "policy": policy,   # what the service reads from policy.json beside the lists
                "params": dict(run.data.params),
                "metrics": {k_: float(v) for k_, v in run.data.metrics.items()}}
    with bentoml.models.create(bento_name, labels=labels, metadata=metadata,
                               module="training.registry.export") as bm:
        out = Path(bm.path)
        # the same lists in both of the format's forms (formats.lists), checked before writing
        list_format.write_table(out / list_format.TABLES["i2i"], table, n_tracks)
        list_format.write_jsonl(out / list_format.FILES["i2i"], table, "track")
        for file, write in extra.items():
            write(out / file)
        tag = str(bm.tag)
    return tag


def _version_lists(mv, name: str, k: int, i2i: str | Path | None) -> tuple[np.ndarray, int, dict, dict]:
    """A version's lists as a table, its catalog's size, the files that go beside them (a
    learner's policy, description and exploration table, or an embedding model's tables) and
    its policy ({}: none)."""
    import shutil

    if versions.is_learned(mv):
        version = learned_format.read(versions.fetch(mv.version, name))
        n_tracks, table, policy = int(version.learner["tracks"]), version.lists, version.policy
        # the exploration table (if the learner made one) is read by the service beside the lists
        extra = {f: (lambda dst, src=version.folder / f: shutil.copyfile(src, dst))
                 for f in (learned_format.POLICY, learned_format.LEARNER, learned_format.EXPLORE)
                 if (version.folder / f).is_file()}
    else:
        _, model = load_model(mv.version, name)
        n_tracks, table, policy = int(model.n_tracks), None, {}
        extra = {f"{what}.npy": (lambda dst, arr=arr: np.save(dst, arr, allow_pickle=False))
                 for what, arr in zip(("context", "target", "target_bias"), model.tables())}
    if i2i is not None:
        if not Path(i2i).is_file():
            raise FileNotFoundError(f"i2i file {i2i} not found (export it with `mlflow run . -e recommend`)")
        try:  # checked as the service will check it: one list per track of the version's catalog
            table = list_format.read_lists(i2i, "track", n_tracks, n_tracks)
        except list_format.FormatError as e:
            raise ValueError(f"i2i file {i2i}: {e} (the version has {n_tracks} tracks)") from None
    elif table is None:
        table = compute_lists(model, k, trained_cap(mv.run_id)).astype(list_format.DTYPE)
    return np.asarray(table), n_tracks, extra, policy
