"""Where the project is: the repo root, and config paths relative to it."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def repo_path(path: str | Path) -> Path:
    """A config's path, relative to the repo root unless absolute."""
    p = Path(path)
    return p if p.is_absolute() else REPO / p
