"""Loading the recommenders' artifacts: files with a documented format (docs/architecture.md).

A missing or malformed artifact raises `ArtifactError` naming the file and the command
that produces it, so that a service never starts half-configured.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from formats import FormatError
from formats import events as event_format
from formats import learned as learned_format
from formats import lists as list_format
from formats.jsonl import read_jsonl

from .catalog import ArtifactError
from .config import BENTOML_PREFIX, making

RECOMMEND_COMMAND = "mlflow run . -e recommend"
COLLECT_COMMAND = "mlflow run . -e collect"

# `bentoml:NAME:VERSION` names a model in the BentoML store; the artifact is the file of
# that name inside the model's directory: the int32 table (`.npy`, memory-mapped: no parse
# at start-up, pages shared between workers) when the model has one, else the JSON lines.
BENTOML_FILES = list_format.FILES
BENTOML_TABLES = list_format.TABLES
# a BentoML model's labels that trace it to the registry (written by training.registry.export)
LINEAGE = {"mlflow_model": "name", "mlflow_version": "version", "mlflow_run_id": "run_id",
           "dataset_digest": "dataset_digest", "role": "role"}


def bentoml_model(ref: str):
    """The BentoML model a `bentoml:NAME:VERSION` reference names; ArtifactError if none."""
    import bentoml

    tag = ref[len(BENTOML_PREFIX):]
    try:
        return bentoml.models.get(tag)
    except Exception as e:  # NotFound, bad tag: both mean start-up must stop
        raise ArtifactError(ref, f"BentoML model not found ({e})", making(tag)) from None


def resolve(ref: str, kind: str, root: Path, model_of: Callable = bentoml_model) -> Path:
    """A config reference → a local file: a path (relative to `root`) or a BentoML model tag."""
    if ref.startswith(BENTOML_PREFIX):
        folder = Path(model_of(ref).path)
        table = folder / BENTOML_TABLES[kind]
        return table if table.is_file() else folder / BENTOML_FILES[kind]
    path = Path(ref)
    return path if path.is_absolute() else root / path


def describe(ref: str, root: Path, model_of: Callable = bentoml_model) -> dict:
    """What `GET /` says of an artifact: for a BentoML model its tag and the registry version
    it was exported from (name, version, MLflow run id, dataset digest); for a file its path."""
    if not ref.startswith(BENTOML_PREFIX):
        path = Path(ref)
        return {"file": str(path if path.is_absolute() else root / path)}
    model = model_of(ref)
    labels = model.info.labels
    return {"bentoml_model": str(model.tag),
            **{out: labels[key] for key, out in LINEAGE.items() if labels.get(key)}}


def load_lists(path: Path, key: str, n_tracks: int, n_keys: int | None, command: str) -> np.ndarray:
    """Lists as the int32 [keys, k] table, -1 padded (`formats.lists`): a `.npy` file is the
    table already made (memory-mapped, read without pickle), any other the JSON lines `{key: int, "recommendations":
    [int, ...]}`."""
    if not path.is_file():
        raise ArtifactError(path, "file not found", command)
    try:
        return list_format.read_lists(path, key, n_tracks, n_keys)
    except FormatError as e:
        raise ArtifactError(path, str(e), command) from None


def load_i2i(ref: str, root: Path, n_tracks: int) -> np.ndarray:
    return load_lists(resolve(ref, "i2i", root), "track", n_tracks, n_tracks, RECOMMEND_COMMAND)


class Tables:
    """The list tables of one service, each file read once.

    Two arms serving one model's lists (Contextual and SessionAware over the control model,
    say) get the same array: one memory map, not two, whose pages would count twice in the
    worker's RSS; one parse, for a JSON-lines file."""

    def __init__(self, root: Path, n_tracks: int) -> None:
        self.root = root
        self.n_tracks = n_tracks
        self._loaded: dict[tuple[str, Path], np.ndarray] = {}
        self._models: dict[str, object] = {}  # each BentoML model looked up once (its model.yaml parsed)
        self._policies: dict[Path, dict[str, Any]] = {}

    def load(self, kind: str, ref: str) -> np.ndarray:
        """What a recommender's artifact option names (`kind`: i2i, lists or log), loaded."""
        if kind == "log":
            return play_counts(ref, self.root, self.n_tracks)
        return self._get(ref, kind, *{"i2i": ("track", self.n_tracks), "lists": ("user", None)}[kind])

    def describe(self, ref: str) -> dict:
        return describe(ref, self.root, self._model)

    def policy(self, ref: str) -> tuple[Path, dict[str, Any]]:
        """(the file, its parameters): the policy learned beside the i2i lists `ref` names
        (`formats.learned.POLICY` in their folder; {} when there is none), read once."""
        path = resolve(ref, "i2i", self.root, self._model).parent / learned_format.POLICY
        if path not in self._policies:
            self._policies[path] = read_policy(path)
        return path, self._policies[path]

    def _model(self, ref: str):
        if ref not in self._models:
            self._models[ref] = bentoml_model(ref)
        return self._models[ref]

    def _get(self, ref: str, kind: str, key: str, n_keys: int | None) -> np.ndarray:
        path = resolve(ref, kind, self.root, self._model)
        got = self._loaded.get((kind, path.resolve()))
        if got is None:
            got = self._loaded[(kind, path.resolve())] = load_lists(path, key, self.n_tracks, n_keys,
                                                                    RECOMMEND_COMMAND)
        return got


def read_policy(path: Path) -> dict[str, Any]:
    """A `policy.json` ({} when the file does not exist); ArtifactError naming it when malformed."""
    try:
        policy = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (ValueError, OSError) as e:
        raise ArtifactError(path, f"malformed policy parameters ({e})", RECOMMEND_COMMAND) from None
    if not isinstance(policy, dict):
        raise ArtifactError(path, f"the policy parameters must be a JSON object, got {type(policy).__name__}",
                            RECOMMEND_COMMAND)
    return policy


def play_counts(ref: str, root: Path, n_tracks: int) -> np.ndarray:
    """How often each track was played in an event log (a file or a folder of `events-*.jsonl*`),
    read as training reads it (`formats.events`)."""
    path = resolve(ref, "log", root) if not ref.startswith(BENTOML_PREFIX) else Path(ref)
    files = event_format.log_files(path) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise ArtifactError(path, "event log not found", COLLECT_COMMAND)
    counts = np.zeros(n_tracks, dtype=np.int64)
    for file in files:
        n = 0
        try:
            for n, rec in read_jsonl(file):
                event_format.check_event(rec)
                t = rec["track"]
                if type(t) is int and 0 <= t < n_tracks:
                    counts[t] += 1
        except FormatError as e:
            problem = str(e) if str(e).startswith("line ") else f"line {n}: {e}"
            raise ArtifactError(file, f"malformed event log ({problem})", COLLECT_COMMAND) from None
    return counts
