"""One MLflow setup for every entry point, so runs and models land in one place.

The project's store is `sqlite:///mlruns/mlflow.db` with artifacts under `mlruns/`
(the Makefile exports that URI). `MLFLOW_TRACKING_URI`, when set, wins: that is also how
`mlflow run` hands its store to the entry point it launches (MLflow >= 3.7 defaults the
launcher itself to `sqlite:///mlflow.db` in the working directory when nothing is set,
and the script must follow the launcher, because the launcher created the run there).
"""
from __future__ import annotations

import argparse
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from training.paths import REPO
from training.runlog import EXPERIMENT_KIND_TAG, MODEL_TRAINING

MLRUNS = REPO / "mlruns"
DEFAULT_TRACKING_URI = f"sqlite:///{MLRUNS / 'mlflow.db'}"
MLFLOW_OWN_DEFAULT = "sqlite:///mlflow.db"   # what MLflow >= 3.7 uses when nothing is set
MODEL_NAME = "botify-i2i"
CHALLENGER = "challenger"
CHAMPION = "champion"
# what `mlflow ui` shows on the registered model's page (every job registers into it)
MODEL_DESCRIPTION = (
    "Botify's next-track recommender: each version is what one learner made of the service's own "
    "event logs: its item-to-item lists with the serving-policy parameters it estimated and its own "
    "files (formats/learned.py; the loop's learners), or an embedding model whose lists are computed "
    "from it (the experiment's recipes). `@challenger` is the newest version; `@champion` is the one "
    "the product serves (exported to the BentoML model botify-champion-lists), moved only by an A/B "
    "test's promotion (the experiment, the daily loop) or by a bootstrap when there is none yet.")


class RegistryError(LookupError):
    """A model reference (alias or version) that the registry does not hold."""


def setup(experiment: str | None = None) -> str:
    """Point MLflow at the project's store (unless MLFLOW_TRACKING_URI says otherwise).

    Returns the tracking URI in use. The experiment is only set when no run was handed
    to us by `mlflow run` (MLFLOW_RUN_ID) and none is active: such a run already belongs
    to an experiment, and a step's child run goes where its parent is.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if os.environ.get("MLFLOW_RUN_ID") and uri == MLFLOW_OWN_DEFAULT:
        import sys
        print(f"note: `mlflow run` recorded this run in ./mlflow.db (MLflow's own default, the "
              f"variable being unset); the project's store is {DEFAULT_TRACKING_URI}: "
              f"export MLFLOW_TRACKING_URI=sqlite:///mlruns/mlflow.db (as the Makefile does)",
              file=sys.stderr)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if experiment and not os.environ.get("MLFLOW_RUN_ID") and mlflow.active_run() is None:
        if mlflow.get_experiment_by_name(experiment) is None:
            # Artifacts beside the sqlite file (mlruns/ for the default store), not in
            # whatever directory we happen to run from (MLflow's default, ./mlruns).
            artifacts = None
            if uri.startswith("sqlite:///"):
                artifacts = (db.resolve().parent / "artifacts").as_uri()
            mlflow.create_experiment(experiment, artifact_location=artifacts,
                                     tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
        mlflow.set_experiment(experiment)
    return uri


def resolve_version(ref: str, name: str = MODEL_NAME) -> "mlflow.entities.model_registry.ModelVersion":
    """A registered version from an alias (`challenger`, `champion`, ...) or a number.

    Fails with the versions and aliases that do exist, so the fix is in the message.
    """
    client = MlflowClient()
    ref = str(ref)
    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException as e:
        try:
            versions = client.search_model_versions(f"name='{name}'")
            known = sorted(int(v.version) for v in versions)
            aliases = sorted(client.get_registered_model(name).aliases) if known else []
        except MlflowException:
            known, aliases = [], []
        hint = (f"registered versions: {known}, aliases: {aliases}" if known else
                f"no version of {name!r} is registered in {mlflow.get_tracking_uri()}: "
                f"run `mlflow run . -e train` first")
        raise RegistryError(f"model {name!r} has no version or alias {ref!r} ({hint})") from e


def safe_uri(uri: str) -> str:
    """A store URI without its password (`postgresql://user:secret@host/db` -> `postgresql://user@host/db`):
    what may be printed, or written into a model that ships in an image."""
    scheme, sep, rest = uri.partition("://")
    netloc, slash, path = rest.partition("/")
    if not sep or "@" not in netloc:
        return uri
    user_info, host = netloc.rsplit("@", 1)
    return f"{scheme}://{user_info.split(':', 1)[0]}@{host}{slash}{path}"


def champion_version(name: str = MODEL_NAME) -> str | None:
    """The version `@champion` of `name` names now; None when there is none (or no such model)."""
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def model_uri(ref: str, name: str = MODEL_NAME) -> str:
    """`models:/name@alias` or `models:/name/version` for a reference."""
    ref = str(ref)
    return f"models:/{name}/{ref}" if ref.isdigit() else f"models:/{name}@{ref}"


MODEL_FLAVOR = "botify_embeddings"


def log_model(model, name: str = "model", register: str | None = None, signature=None,
              metadata: dict | None = None) -> str | None:
    """Log an EmbeddingModel to the active run in the safe format and register it.

    An MLflow 3 logged model (MLmodel with the signature and metadata, flavor
    `botify_embeddings`) whose files are `spec.json` + `weights.npz` (training.learning.model): no
    pickle, unlike MLflow's pytorch flavor. Returns the new version when `register` is given.
    """
    import tempfile

    from mlflow.models import Model

    from training.learning.model import FORMAT, SPEC_FILE, WEIGHTS_FILE, save_model
    run = mlflow.active_run()
    logged = mlflow.initialize_logged_model(name=name, source_run_id=run.info.run_id if run else None,
                                            model_type=MODEL_FLAVOR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            save_model(model, tmp)
            mm = Model(artifact_path=name, run_id=run.info.run_id if run else None, model_id=logged.model_id,
                       signature=signature, metadata=metadata)
            mm.add_flavor(MODEL_FLAVOR, format=FORMAT, spec=SPEC_FILE, weights=WEIGHTS_FILE,
                          loader="training.learning.model.load_model")
            mm.save(str(Path(tmp) / "MLmodel"))
            MlflowClient().log_model_artifacts(logged.model_id, tmp)
    except BaseException:
        mlflow.finalize_logged_model(logged.model_id, "FAILED")
        raise
    mlflow.finalize_logged_model(logged.model_id, "READY")
    if not register:
        return None
    version = str(mlflow.register_model(f"models:/{logged.model_id}", register).version)
    describe(register, version, _version_description(run, metadata or {}))
    return version


def describe(name: str, version: str, text: str) -> None:
    """Say on a version (and, once, on its registered model) what it is: `mlflow ui` shows both."""
    client = MlflowClient()
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=MODEL_DESCRIPTION)
    client.update_model_version(name, version, description=text)


def _version_description(run: "mlflow.ActiveRun | None", metadata: dict) -> str:
    what = f"An embedding model (flavor `{MODEL_FLAVOR}`: spec.json + weights.npz, no pickle)"
    if run is not None:
        what += f" trained by run `{run.info.run_name}` ({run.info.run_id})"
    facts = ([f"{metadata['n_tracks']} tracks"] if "n_tracks" in metadata else []) + \
            ([f"embedding size {metadata['embedding_dim']}"] if "embedding_dim" in metadata else []) + \
            ([f"the event log of digest {str(metadata['dataset_digest'])[:12]}"] if metadata.get("dataset_digest") else [])
    return what + (f": {', '.join(facts)}" if facts else "") + \
        ". Its i2i lists (`mlflow run . -e recommend`) are what the service serves for it."


def load_model(ref: str, name: str = MODEL_NAME):
    """(model version, EmbeddingModel) of a registered version or alias, read without pickle.

    A version in any other format (e.g. a pickled `model.pth` someone registered) is refused
    with training.learning.model.ModelFormatError: its files are never deserialized.
    """
    from training.learning.model import load_model as load_dir
    mv = resolve_version(ref, name)
    path = mlflow.artifacts.download_artifacts(artifact_uri=model_uri(mv.version, name))
    return mv, load_dir(path)


def flag(value: str) -> bool:
    """An entry point's true/false parameter (MLproject passes them as strings).

    For argparse's `type=`: a misspelt value is an error naming it, never a silent "false".
    """
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "y", "on"):
        return True
    if v in ("0", "false", "no", "n", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {value!r} (use true or false)")


@contextmanager
def step_run(run_name: str, entry: str) -> Iterator["mlflow.ActiveRun"]:
    """The run a step (collect, train, recommend, ...) logs into.

    Only entry points open top-level runs: when one is active (a pipeline's parent run),
    the step is its nested child, in the parent's experiment; called alone (a test, a
    notebook), the step opens its own run in the experiment `setup` chose. Either way the
    run is ended (FINISHED, or FAILED on an exception) when the block leaves.
    """
    parent = mlflow.active_run()
    kwargs = {"nested": True, "experiment_id": parent.info.experiment_id} if parent else {}
    with mlflow.start_run(run_name=run_name, tags={"botify.entry": entry}, **kwargs) as run:
        yield run
