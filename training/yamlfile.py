"""One reader for the project's YAML configs: a file that must hold a mapping."""
from __future__ import annotations

from pathlib import Path

import yaml


def read_mapping(path: str | Path, what: str, hint: str) -> dict:
    """The mapping at the top of the YAML file `path`. FileNotFoundError (with `hint`, where to
    find one) or ValueError name `what` the file is meant to be and what is wrong with it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} {p} not found ({hint})")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{what} {p} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{what} {p}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw
