"""A learner's version in the MLflow registry: `register` one, `fetch` one's folder.

A version of the registered model `botify-i2i` is one learner's i2i lists, the policy
parameters it estimated and its own files: the folder `formats.learned` defines, logged
as an MLflow logged model (flavor `botify_i2i`; plain arrays and JSON, never a pickle).

    version = register(learned, learner_meta, tags={"days_trained_on": "3,4,5"})   # alias @challenger
    folder = fetch("champion")                   # a local folder: i2i.npy, i2i.jsonl, policy.json, ...
    lists = formats.learned.read(folder).lists   # or np.load(folder / "i2i.npy", allow_pickle=False)
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import mlflow
import numpy as np
from mlflow import MlflowClient

from formats import FormatError
from formats import learned as learned_format
from training.registry import tracking

if TYPE_CHECKING:   # the learners' type, named without importing them (registry is below learning)
    from training.learning.learners.base import Learned

MODEL_NAME = tracking.MODEL_NAME
FLAVOR = "botify_i2i"


def register(learned: "Learned", learner: Mapping[str, Any], name: str = MODEL_NAME,
             alias: str | None = tracking.CHALLENGER, tags: Mapping[str, Any] | None = None) -> str:
    """Log `learned` to the active run as a logged model, register it as a new version of
    `name`, point `alias` at it and tag it (lineage: days_trained_on, dataset_digest, ...).

    `learner` is `learner.json`'s content (name, learner, config, window, figures). Returns
    the version number. Nothing is registered when writing the folder fails.
    """
    import tempfile

    from mlflow.models import Model, ModelSignature
    from mlflow.types import Schema, TensorSpec

    run = mlflow.active_run()
    run_id = run.info.run_id if run else None
    logged = mlflow.initialize_logged_model(name="lists", source_run_id=run_id, model_type=FLAVOR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = learned_format.write(Path(tmp) / "version", learned.lists, policy=learned.policy,
                                          learner=learner, model=learned.model,
                                          explore=learned.explore)
            k = int(np.asarray(learned.lists).shape[1])
            # a track id in, its list out: what the version serves, for MLflow's model page
            signature = ModelSignature(Schema([TensorSpec(np.dtype(np.int64), (-1,), "track")]),
                                       Schema([TensorSpec(np.dtype(np.int32), (-1, k), "lists")]))
            mm = Model(artifact_path="lists", run_id=run_id, model_id=logged.model_id, signature=signature,
                       metadata={"learner": learner.get("learner"), "name": learner.get("name")})
            mm.add_flavor(FLAVOR, format=learned_format.FORMAT, lists=learned_format.TABLE,
                          policy=learned_format.POLICY, learner=learned_format.LEARNER,
                          reader="formats.learned.read")
            mm.save(str(folder / "MLmodel"))
            MlflowClient().log_model_artifacts(logged.model_id, str(folder))
    except BaseException:
        mlflow.finalize_logged_model(logged.model_id, "FAILED")
        raise
    mlflow.finalize_logged_model(logged.model_id, "READY")
    client = MlflowClient()
    version = str(mlflow.register_model(f"models:/{logged.model_id}", name).version)
    tracking.describe(name, version, f"{learner.get('name')} ({learner.get('learner')}): one learner's i2i lists, "
                      f"the serving-policy parameters it estimated (policy.json), what made it (learner.json) "
                      f"and its own files (model/), trained by run {run_id}. Format: formats/learned.py.")
    if alias:
        client.set_registered_model_alias(name, alias, version)
    for key, value in {"run_id": run_id or "", **dict(tags or {})}.items():
        client.set_model_version_tag(name, version, key, str(value))
    return version


def is_learned(mv) -> bool:
    """Whether a registered version holds a learner's lists (every learner's version is tagged
    with its learner; an embedding model registered by `training.learning.train` is not)."""
    return "learner" in (mv.tags or {})


def fetch(ref: str, name: str = MODEL_NAME, dst: str | Path | None = None) -> Path:
    """The folder of version or alias `ref` of `name`, downloaded (into `dst`, default a new
    temporary folder) and checked to be a learned version (`formats.learned`).

    tracking.RegistryError names the versions and aliases that exist, or what the version
    holds instead of lists (e.g. an embedding model `training.learning.train` registered).
    """
    mv = tracking.resolve_version(ref, name)
    if dst is not None:
        Path(dst).mkdir(parents=True, exist_ok=True)
    path = Path(mlflow.artifacts.download_artifacts(artifact_uri=tracking.model_uri(mv.version, name),
                                                    dst_path=None if dst is None else str(dst)))
    try:
        learned_format.read(path)
    except FormatError as e:
        raise tracking.RegistryError(f"{name} v{mv.version} is not a learned version ({e}): register "
                                     f"it again through a learner (training.learning.learn)") from None
    return path
