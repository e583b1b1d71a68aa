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
# that name inside the model's directory.
BENTOML_PREFIX = "bentoml:"
BENTOML_FILES = {"i2i": "i2i.jsonl", "lists": "lists.jsonl"}


def resolve(ref: str, kind: str, root: Path) -> Path:
    """A config reference → a local file: a path (relative to `root`) or a BentoML model tag."""
    if ref.startswith(BENTOML_PREFIX):
        import bentoml

        tag = ref[len(BENTOML_PREFIX):]
        try:
            model = bentoml.models.get(tag)
        except Exception as e:  # NotFound, bad tag: both mean start-up must stop
            raise ArtifactError(ref, f"BentoML model not found ({e})",
                                f"{RECOMMEND_COMMAND} (which imports the model into BentoML)") from None
        return Path(model.path) / BENTOML_FILES[kind]
    path = Path(ref)
    return path if path.is_absolute() else root / path


def load_lists(path: Path, key: str, n_tracks: int, n_keys: int | None, command: str) -> np.ndarray:
    """JSON lines `{key: int, "recommendations": [int, ...]}` → int32 [keys, k], -1 padded.

    A dense array keeps 50k x 50 lists at 10 MB instead of ~150 MB of Python ints.
    """
    if not path.is_file():
        raise ArtifactError(path, "file not found", command)
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
