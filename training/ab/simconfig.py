"""What training needs to know of a simulator config, read as plain YAML (never `import sim`)."""
from __future__ import annotations

from pathlib import Path

import yaml

from training.paths import REPO
from training.yamlfile import read_mapping


def world_dir(sim_config: str | Path) -> Path:
    """The world folder a simulator config writes (`world.dir`, relative to the repo root)."""
    cfg = read_mapping(sim_config, "simulator config", "e.g. sim/config/env.yml")
    d = Path((cfg.get("world") or {}).get("dir", "data/world"))
    return d if d.is_absolute() else REPO / d


def session_cap(sim_config: str | Path) -> int | None:
    """`session.max_steps`: the simulator truncates a session after this many recommended
    tracks (None: no cap). The report states it beside each arm's share of capped sessions."""
    cfg = yaml.safe_load(Path(sim_config).read_text()) or {}
    cap = (cfg.get("session") or {}).get("max_steps")
    return int(cap) if cap is not None else None
