"""A recommender's options: one frozen dataclass per recommender (`X.Options`), the only list of them.

The dataclass checks its values when made (from a config entry or in Python): an unknown
key, a value of the wrong type or out of range is an `OptionError` naming the key and what
it allows. `read_options` makes it from a config entry, loading the artifacts it names
(fields declared with `artifact=`); `service.recommenders.docs` writes the documentation's
tables from it.

    class MyRecommender:
        @dataclass(frozen=True)
        class Options(RecommenderOptions):
            i2i: np.ndarray = option(artifact="i2i", doc="the i2i lists")
            top: int = option(100, within=">= 1", doc="how many of the most played tracks")
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import MISSING, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

# what a config names, and what the recommender gets instead: `artifacts.Tables` loads each kind
ARTIFACTS = {
    "i2i": "i2i lists (a file, or `bentoml:NAME:VERSION`)",
    "lists": "per-user lists (a file, or `bentoml:NAME:VERSION`)",
    "log": "an event log (a file or folder; the recommender gets its play counts)",
}
#: the artifact whose folder carries the learned values (`formats.learned.POLICY` beside the lists)
LEARNED_FROM = "i2i"
_INTERVAL = re.compile(r"^([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])$")
_BOUND = re.compile(r"^(>=|>|<=|<)\s*(\S+)$")


class OptionError(ValueError):
    """A recommender's option is unknown, missing, of the wrong type or out of range."""


def option(default: Any = MISSING, *, doc: str, within: str | None = None, artifact: str | None = None,
           learned: bool = False, beside: str | None = None) -> Any:
    """A field of an `Options` dataclass: its default (none: required), what it means (one
    line, for the docs), the range a number must lie in (`[0, 1)`, `> 0`, `>= 1`), or the
    kind of artifact (`ARTIFACTS`) the config names for it. `learned`: training estimates it
    from the logs and ships it beside the i2i lists (`LEARNED_FROM`); a config that leaves it
    unset gets that value (`learned_values`), and the default only when the lists carry none.
    `beside`: a path option a config that leaves it unset gets as the file of that name beside
    the i2i lists, when there is one (a learned version's own file, e.g. `explore.npz`)."""
    if artifact is not None and artifact not in ARTIFACTS:
        raise ValueError(f"artifact must be one of {sorted(ARTIFACTS)}, got {artifact!r}")
    if within is not None:
        _interval(within)  # a typo in a declaration fails at import, not at the first config
    if learned and (default is MISSING or artifact is not None):
        raise ValueError("a learned option has a default (lists without learned values) and is no artifact")
    return dataclasses.field(default=default, metadata={"doc": doc, "within": within, "artifact": artifact,
                                                        "learned": learned, "beside": beside})


@dataclass(frozen=True)
class RecommenderOptions:
    """Base of every recommender's options; a recommender without options uses it as is."""

    def __post_init__(self) -> None:
        types = hints(type(self))
        for f in dataclasses.fields(self):
            value = _checked(f.name, getattr(self, f.name), types[f.name], f.metadata)
            object.__setattr__(self, f.name, value)


def read_options(cls: type[RecommenderOptions], spec: dict, load: Callable[[str, str], Any]) -> RecommenderOptions:
    """`cls` from a config entry's options (`kind` removed); `load(artifact, ref)` loads what
    an artifact field names."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(spec) - set(fields))
    if unknown:
        raise OptionError(f"unknown option(s) {unknown}; allowed: {sorted(fields) or 'none'}")
    missing = [name for name, f in fields.items() if required(f) and spec.get(name) in (None, "")]
    if missing:
        raise OptionError(f"missing {missing}")
    values = {}
    for name, value in spec.items():
        artifact = fields[name].metadata.get("artifact")
        if artifact is not None and value is not None:
            if not isinstance(value, str) or not value:
                raise OptionError(f"{name!r} must name {ARTIFACTS[artifact]}, got {value!r}")
            value = load(artifact, value)
        values[name] = value
    return cls(**values)


def learnable(cls: type[RecommenderOptions]) -> list[str]:
    """The options of `cls` declared `learned=True`."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("learned")]


def learned_values(cls: type[RecommenderOptions], spec: dict, policy_of: Callable[[str], Any]) -> dict[str, Any]:
    """What the lists bring for the learnable options a config entry leaves unset: `policy_of(ref)`
    gives (the file, the policy parameters) beside the i2i artifact `ref` names ({} when none).
    Keys the options do not declare learnable are someone else's and left alone; a value out
    of range is an OptionError naming the file. Options declared `beside` a file get its path
    when it is there."""
    names = learnable(cls)
    beside = {f.name: f.metadata["beside"] for f in dataclasses.fields(cls) if f.metadata.get("beside")}
    ref = next((spec.get(f.name) for f in dataclasses.fields(cls) if f.metadata.get("artifact") == LEARNED_FROM), None)
    if not (names or beside) or not isinstance(ref, str) or not ref:
        return {}
    source, policy = policy_of(ref)   # read even when the config sets them all: a broken file is refused
    names = [n for n in names if n not in spec]
    types = hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for name in names:
        if name in policy:
            try:
                out[name] = _checked(name, policy[name], types[name], fields[name].metadata)
            except OptionError as e:
                raise OptionError(f"{source}: {e}") from None
    for name, file in beside.items():
        if spec.get(name) in (None, "") and (Path(source).parent / file).is_file():
            out[name] = str(Path(source).parent / file)
    return out


def required(f: dataclasses.Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def allowed(meta: typing.Mapping, hint: Any) -> str:
    """What a field (its metadata and type) accepts, in words, for errors and the docs."""
    artifact = meta.get("artifact")
    if artifact is not None:
        return ARTIFACTS[artifact]
    base, nullable = _base(hint)
    if typing.get_origin(base) is Literal:
        text = ", ".join(f"`{c}`" for c in typing.get_args(base))
    else:
        text = {int: "integer", float: "number", bool: "true or false", str: "text"}.get(base, str(base))
        within = meta.get("within")
        if within:
            text += f" {'in ' if within[0] in '[(' else ''}{within}"
    return text + (", or null" if nullable else "")


@lru_cache(maxsize=None)
def hints(cls: type[RecommenderOptions]) -> dict[str, Any]:
    """The fields' types, resolved (the modules use `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)


def _base(hint: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return hint, False


def _checked(name: str, value: Any, hint: Any, meta: typing.Mapping) -> Any:
    """`value` if `hint` and the field's range allow it (an int where a float is asked made a
    float); else an OptionError naming the key and what it allows."""
    base, nullable = _base(hint)
    if value is None:
        if nullable:
            return None
    elif typing.get_origin(base) is Literal:
        if value in typing.get_args(base) and type(value) is str:
            return value
    elif base is float:
        if type(value) in (int, float) and math.isfinite(value) and _within(meta.get("within"), value):
            return float(value)
    elif base is int:
        if type(value) is int and _within(meta.get("within"), value):
            return value
    elif base in (bool, str):
        if type(value) is base:
            return value
    elif base is np.ndarray:
        if isinstance(value, np.ndarray):
            return value
    else:
        raise TypeError(f"option {name!r}: type {hint} is not one options support")
    raise OptionError(f"{name!r} must be {allowed(meta, hint)}, got {value!r}")


@lru_cache(maxsize=None)
def _interval(text: str) -> tuple[float, bool, float, bool]:
    """(low, low included, high, high included) of `[0, 1)`, `> 0`, `>= 1`, `<= 5`."""
    m = _INTERVAL.match(text)
    if m:
        return float(m[2]), m[1] == "[", float(m[3]), m[4] == "]"
    m = _BOUND.match(text)
    if m:
        x = float(m[2])
        return (x, m[1] == ">=", math.inf, False) if m[1][0] == ">" else (-math.inf, False, x, m[1] == "<=")
    raise ValueError(f"a range is `[a, b]` (or with `(`, `)`), `> a`, `>= a`, `< b` or `<= b`; got {text!r}")


def _within(text: str | None, x: float) -> bool:
    if text is None:
        return True
    low, low_in, high, high_in = _interval(text)
    return (low < x or (low_in and x == low)) and (x < high or (high_in and x == high))
