"""A learner's settings: a dataclass read from its YAML, a few keys overridden.

One reader for every learner's config (the embedding learner's `TrainConfig` too), so a
misspelt key fails the same way everywhere: naming the file, the key and the known ones.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from training.yamlfile import read_mapping

T = TypeVar("T")


def from_yaml(cls: type[T], path: str | Path | None, **overrides: Any) -> T:
    """`cls` (a dataclass) from the YAML at `path` (None: its defaults), then `overrides`
    (a None value leaves the YAML's). FileNotFoundError / ValueError name the fix."""
    raw: dict = {}
    where = "overrides"
    if path is not None:
        raw = read_mapping(path, "learner config", "see training/config/ and training/config/learners/")
        where = str(path)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**raw)
