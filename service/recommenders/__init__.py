"""The recommenders: one small class each, one method, no HTTP, no global state.

A recommender is a class built as `X(catalog, options)` once per worker and asked
`recommend(ctx) -> track` once per request (`base.Context`: what it sees). Its options are
`X.Options`, a frozen dataclass deriving from `RecommenderOptions` (none: the base itself),
which the config entry fills and checks. A config names it by `kind`: one of `KINDS`, or a
plugin's import path `package.module:Class` with the same interface.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

from .. import artifacts
from ..catalog import Catalog
from .base import Context, Lists, Recommender, draw_from, top_tracks
from .exploring import Exploring
from .listed import Contextual, I2IHistory, Indexed
from .options import OptionError, RecommenderOptions, learned_values, option, read_options
from .popular import Random, StickyArtist, TopPop
from .session_aware import SessionAware

# the built-in kinds; a new one is its module and a line here
KINDS: dict[str, type] = {
    "random": Random,
    "toppop": TopPop,
    "sticky_artist": StickyArtist,
    "indexed": Indexed,
    "contextual": Contextual,
    "i2i_history": I2IHistory,
    "session_aware": SessionAware,
    "exploring": Exploring,
}


def recommender_class(kind: Any) -> type:
    """The class a config's `kind` names: a built-in kind or `package.module:Class`."""
    if isinstance(kind, str) and kind in KINDS:
        return KINDS[kind]
    if not (isinstance(kind, str) and ":" in kind):
        raise ValueError(f"'kind' must be one of {sorted(KINDS)} or a plugin's `package.module:Class`, got {kind!r}")
    module_name, _, qualname = kind.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"kind {kind!r}: cannot import {module_name!r} ({e}); is its folder on PYTHONPATH?") from None
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ValueError(f"kind {kind!r}: module {module_name!r} has no {qualname!r}")
    if not (isinstance(found, type) and callable(getattr(found, "recommend", None))):
        raise ValueError(f"kind {kind!r} is not a recommender: a class with `recommend(self, ctx) -> int`")
    opts = getattr(found, "Options", RecommenderOptions)
    if not (isinstance(opts, type) and issubclass(opts, RecommenderOptions) and dataclasses.is_dataclass(opts)):
        raise ValueError(f"kind {kind!r}: its `Options` must be a dataclass deriving from "
                         "service.recommenders.RecommenderOptions")
    return found


def build(name: str, spec: Any, catalog: Catalog, root: Path, tables: artifacts.Tables | None = None,
          config: str | Path | None = None) -> Recommender:
    """A recommender from its config entry `{kind: ..., <options>}` (artifact paths relative to
    `root`). Recommenders built with one `tables` share the artifacts they name alike (one
    memory map per file). Errors name the entry, and the config file when given."""
    where = f"service config {config}: " if config else ""
    if not isinstance(spec, dict):
        raise ValueError(f"{where}recommender {name!r} must be a mapping {{kind: ..., <options>}}")
    try:
        cls = recommender_class(spec.get("kind"))
    except ValueError as e:
        raise ValueError(f"{where}recommender {name!r}: {e}") from None
    tables = tables if tables is not None else artifacts.Tables(root, len(catalog))
    options = {k: v for k, v in spec.items() if k != "kind"}
    cls_options = getattr(cls, "Options", RecommenderOptions)
    try:
        learned = learned_values(cls_options, options, tables.policy)
        return cls(catalog, read_options(cls_options, {**learned, **options}, tables.load))
    except OptionError as e:
        raise OptionError(f"{where}recommender {name!r} ({spec['kind']}): {e}") from None


def learned(spec: dict, tables: artifacts.Tables) -> dict[str, Any]:
    """The values a (built) config entry's recommender takes from the policy beside its lists."""
    cls = recommender_class(spec.get("kind"))
    options = {k: v for k, v in spec.items() if k != "kind"}
    return learned_values(getattr(cls, "Options", RecommenderOptions), options, tables.policy)


__all__ = ["KINDS", "Context", "Contextual", "Exploring", "I2IHistory", "Indexed", "Lists", "OptionError",
           "RecommenderOptions", "Random", "Recommender", "SessionAware", "StickyArtist", "TopPop", "build", "draw_from", "learned", "option",
           "read_options", "recommender_class", "top_tracks"]
