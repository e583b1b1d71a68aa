"""The service's config file: which one (`BOTIFY_CONFIG`) and its top-level shape.

Light on purpose (yaml only): BentoML's server process imports service.py to read the
service's settings (the number of workers) before it starts any worker; loading the
workers' logic there (numpy, the recommenders) would cost every start time and the server
memory for nothing.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

CONFIG_ENV = "BOTIFY_CONFIG"
DEFAULT_CONFIG = "service/config/cold_start.yml"
# A BentoML model named as an artifact: `bentoml:NAME:VERSION` (service/artifacts.py reads it)
BENTOML_PREFIX = "bentoml:"
# LibYAML's safe loader where PyYAML has it (same objects, faster; a start reads the config three
# times: the server's settings, the worker's, the worker's service)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
TOP_LEVEL = {"catalog", "seed", "event_log", "session_store", "recommenders", "experiments",
             "max_body_bytes", "workers"}


def config_path(path: str | None = None) -> Path:
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def read_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"service config {path} not found (set {CONFIG_ENV} or see service/config/)")
    cfg = yaml.load(path.read_text(), Loader=_SAFE_LOADER)
    if not isinstance(cfg, dict):
        raise ValueError(f"service config {path}: not a YAML mapping")
    unknown = set(cfg) - TOP_LEVEL
    if unknown:
        raise ValueError(f"service config {path}: unknown keys {sorted(unknown)}")
    for key in ("catalog", "recommenders", "experiments"):
        if key not in cfg:
            raise ValueError(f"service config {path}: missing {key!r}")
    return cfg


def served_config(bento_config: str | None) -> Path:
    """The config a server serves: `BOTIFY_CONFIG`, else the Bento's `config` argument
    (bentofile.yaml's `args`, recorded by `bentoml build` and restored wherever the Bento is
    served, and read by a bare `bentoml serve` in the repo root), else the cold start."""
    return Path(os.environ.get(CONFIG_ENV) or bento_config or DEFAULT_CONFIG)


def bentoml_models(cfg: dict) -> list[str]:
    """The BentoML model tags (`NAME:VERSION`) the recommenders that some experiment serves name,
    in config order: what a Bento of this config must hold."""
    used = {rec for e in cfg.get("experiments") or [] if isinstance(e, dict)
            for rec in (e.get("arms") or {}).values()}
    tags: list[str] = []
    for name, spec in (cfg.get("recommenders") or {}).items():
        for value in (spec.values() if name in used and isinstance(spec, dict) else ()):
            if isinstance(value, str) and value.startswith(BENTOML_PREFIX) and value[len(BENTOML_PREFIX):] not in tags:
                tags.append(value[len(BENTOML_PREFIX):])
    return tags


def making(tag: str) -> str:
    """The command that makes the BentoML model `tag`, for a message about it missing."""
    name = tag.split(":", 1)[0]
    return ("`make experiment` or `make loop` (each exports `@champion`'s lists into botify-champion-lists, "
            "the experiment also its baseline into botify-baseline-lists); "
            f"any registered version: `mlflow run . -e to_bentoml --env-manager local -P model=VERSION -P bento_name={name}`")
