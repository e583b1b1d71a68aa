"""Loading the recommenders' artifacts: files with a documented format (docs/architecture.md).

A missing or malformed artifact raises `ArtifactError` naming the file and the command
that produces it, so that a service never starts half-configured.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .catalog import ArtifactError, read_jsonl

RECOMMEND_COMMAND = "mlflow run . -e recommend"
COLLECT_COMMAND = "mlflow run . -e collect"

# `bentoml:NAME:VERSION` names a model in the BentoML store; the artifact is the file of
# that name inside the model's directory: the int32 table (`.npy`, memory-mapped: no parse
# at start-up, pages shared between workers) when the model has one, else the JSON lines.
BENTOML_PREFIX = "bentoml:"
BENTOML_FILES = {"i2i": "i2i.jsonl", "lists": "lists.jsonl"}
BENTOML_TABLES = {"i2i": "i2i.npy", "lists": "lists.npy"}
# a BentoML model's labels that trace it to the registry (written by training.to_bentoml)
LINEAGE = {"mlflow_model": "name", "mlflow_version": "version", "mlflow_run_id": "run_id",
           "dataset_digest": "dataset_digest", "role": "role"}


def bentoml_model(ref: str):
    """The BentoML model a `bentoml:NAME:VERSION` reference names; ArtifactError if none."""
    import bentoml

    tag = ref[len(BENTOML_PREFIX):]
    try:
        return bentoml.models.get(tag)
    except Exception as e:  # NotFound, bad tag: both mean start-up must stop
        raise ArtifactError(ref, f"BentoML model not found ({e})",
                            f"{RECOMMEND_COMMAND} (which imports the model into BentoML)") from None


def resolve(ref: str, kind: str, root: Path) -> Path:
    """A config reference → a local file: a path (relative to `root`) or a BentoML model tag."""
    if ref.startswith(BENTOML_PREFIX):
        folder = Path(bentoml_model(ref).path)
        table = folder / BENTOML_TABLES[kind]
        return table if table.is_file() else folder / BENTOML_FILES[kind]
    path = Path(ref)
    return path if path.is_absolute() else root / path


def describe(ref: str, root: Path) -> dict:
    """What `GET /` says of an artifact: for a BentoML model its tag and the registry version
    it was exported from (name, version, MLflow run id, dataset digest); for a file its path."""
    if not ref.startswith(BENTOML_PREFIX):
        path = Path(ref)
        return {"file": str(path if path.is_absolute() else root / path)}
    model = bentoml_model(ref)
    labels = model.info.labels
    return {"bentoml_model": str(model.tag),
            **{out: labels[key] for key, out in LINEAGE.items() if labels.get(key)}}


def load_table(path: Path, key: str, n_tracks: int, n_keys: int | None, command: str) -> np.ndarray:
    """An int32 [keys, k] table saved with numpy (-1 padding at the end of a row), memory-mapped.

    Read without pickle (`allow_pickle=False`): an object array is refused, not run.
    """
    try:
        table = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ArtifactError(path, f"not a numeric .npy table ({e})", command) from None
    if table.dtype != np.int32 or table.ndim != 2 or table.shape[0] == 0:
        raise ArtifactError(path, f"expected a 2-D int32 table, got {table.dtype} {table.shape}", command)
    if n_keys is not None and table.shape[0] != n_keys:
        raise ArtifactError(path, f"{table.shape[0]} rows, expected one per {key} ({n_keys})", command)
    if int(table.min()) < -1 or int(table.max()) >= n_tracks:
        raise ArtifactError(path, f"recommendations outside the catalog (0..{n_tracks - 1}, -1 pads)", command)
    return table


def load_lists(path: Path, key: str, n_tracks: int, n_keys: int | None, command: str) -> np.ndarray:
    """JSON lines `{key: int, "recommendations": [int, ...]}` → int32 [keys, k], -1 padded.

    A dense array keeps 50k x 50 lists at 10 MB instead of ~150 MB of Python ints. A `.npy`
    path is the same table already made (`load_table`).
    """
    if not path.is_file():
        raise ArtifactError(path, "file not found", command)
    if path.suffix == ".npy":
        return load_table(path, key, n_tracks, n_keys, command)
    rows: dict[int, list[int]] = {}
    try:
        for n, rec in read_jsonl(path):
            k, recs = rec.get(key), rec.get("recommendations")
            if type(k) is not int or k < 0 or (n_keys is not None and k >= n_keys):
                raise ValueError(f"line {n}: {key!r} must be an integer in the catalog")
            if not isinstance(recs, list) or not all(type(t) is int and 0 <= t < n_tracks for t in recs):
                raise ValueError(f"line {n}: 'recommendations' must be a list of catalog tracks")
            rows[k] = recs
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(path, f"malformed ({e})", command) from None
    if not rows:
        raise ArtifactError(path, "no lists in file", command)
    width = max(len(r) for r in rows.values())
    size = n_keys if n_keys is not None else max(rows) + 1
    table = np.full((size, max(width, 1)), -1, dtype=np.int32)
    for k, recs in rows.items():
        table[k, : len(recs)] = recs
    return table


def load_i2i(ref: str, root: Path, n_tracks: int) -> np.ndarray:
    return load_lists(resolve(ref, "i2i", root), "track", n_tracks, n_tracks, RECOMMEND_COMMAND)


def load_user_lists(ref: str, root: Path, n_tracks: int) -> np.ndarray:
    return load_lists(resolve(ref, "lists", root), "user", n_tracks, None, RECOMMEND_COMMAND)


class Tables:
    """The list tables of one service, each file read once.

    Two arms serving one model's lists (Contextual and SessionAware over the control model,
    say) get the same array: one memory map, not two, whose pages would count twice in the
    worker's RSS; one parse, for a JSON-lines file."""

    def __init__(self, root: Path, n_tracks: int) -> None:
        self.root = root
        self.n_tracks = n_tracks
        self._loaded: dict[tuple[str, Path], np.ndarray] = {}

    def i2i(self, ref: str) -> np.ndarray:
        return self._get(ref, "i2i", "track", self.n_tracks)

    def user_lists(self, ref: str) -> np.ndarray:
        return self._get(ref, "lists", "user", None)

    def _get(self, ref: str, kind: str, key: str, n_keys: int | None) -> np.ndarray:
        path = resolve(ref, kind, self.root)
        got = self._loaded.get((kind, path.resolve()))
        if got is None:
            got = self._loaded[(kind, path.resolve())] = load_lists(path, key, self.n_tracks, n_keys,
                                                                    RECOMMEND_COMMAND)
        return got


def play_counts(ref: str, root: Path, n_tracks: int) -> np.ndarray:
    """How often each track was played in an event log (a file or a folder of `events-*.jsonl*`)."""
    path = resolve(ref, "log", root) if not ref.startswith(BENTOML_PREFIX) else Path(ref)
    files = sorted(path.glob("events-*.jsonl*")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise ArtifactError(path, "event log not found", COLLECT_COMMAND)
    counts = np.zeros(n_tracks, dtype=np.int64)
    for file in files:
        try:
            with file.open() as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        t = json.loads(line)["track"]
                        if type(t) is int and 0 <= t < n_tracks:
                            counts[t] += 1
        except (ValueError, KeyError, TypeError) as e:
            raise ArtifactError(file, f"malformed event log line {n} ({e})", COLLECT_COMMAND) from None
    return counts
