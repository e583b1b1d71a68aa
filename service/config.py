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

