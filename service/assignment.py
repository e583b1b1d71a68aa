"""Deterministic A/B assignment, as the course does it.

A user's arm is MurmurHash3 (32-bit) of the user id's decimal string, seeded with the
hash of the experiment's name, modulo the number of arms. Salting by the name makes
two experiments' assignments independent; the hash makes them stable across processes
and restarts without any stored state.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mmh3


@dataclass(frozen=True)
class Experiment:
    name: str
    arms: tuple[str, ...]  # arm names in config order: C, T1, T2, ...
    recommenders: tuple[str, ...]  # the recommender of each arm
    salt: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError(f"experiment {self.name!r} has no arms")
        object.__setattr__(self, "salt", mmh3.hash(self.name, signed=False))

    def arm_index(self, user: int) -> int:
        return mmh3.hash(str(user), self.salt, signed=False) % len(self.arms)

    def arm(self, user: int) -> str:
        return self.arms[self.arm_index(user)]


def parse_experiments(specs: object, recommenders: set[str]) -> list[Experiment]:
    """`[{name, arms: {C: rec, T1: rec, ...}}, ...]` from the config, checked."""
    if not isinstance(specs, list) or not specs:
        raise ValueError("config: 'experiments' must be a non-empty list")
    out: list[Experiment] = []
    for spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("arms"), dict):
            raise ValueError("config: each experiment needs 'name' and 'arms: {C: recommender, ...}'")
        arms = spec["arms"]
        if "C" not in arms:
            raise ValueError(f"experiment {spec['name']!r}: needs a control arm 'C'")
        for arm, rec in arms.items():
            if rec not in recommenders:
                raise ValueError(f"experiment {spec['name']!r}: arm {arm} names unknown recommender {rec!r}")
        out.append(Experiment(spec["name"], tuple(map(str, arms)), tuple(arms.values())))
    if len({e.name for e in out}) != len(out):
        raise ValueError("config: experiment names must be unique")
    return out
