"""Gymnasium environments of the listener simulator: one session at a time
(:class:`ListenerEnv`, exact and per-request) and a batch of sessions stepped with numpy
(:class:`ListenerVectorEnv`, for fast offline evaluation).

Registered as ``Botify/Listener-v0``::

    env = gymnasium.make("Botify/Listener-v0", config="sim/config/small.yml")
    envs = gymnasium.make_vec("Botify/Listener-v0", num_envs=1024, vectorization_mode="vector_entry_point",
                              config="sim/config/small.yml")
"""
from __future__ import annotations

import gymnasium

from sim.envs.listener import ListenerEnv, UnknownTrackError
from sim.envs.vector import ListenerVectorEnv

__all__ = ["ListenerEnv", "ListenerVectorEnv", "UnknownTrackError", "make_env", "make_vector_env"]


def make_env(config: str = "sim/config/env.yml", render_mode: str | None = None) -> ListenerEnv:
    """The environment of a config's world (which must have been generated)."""
    from sim.config import load_config
    from sim.world import World
    cfg = load_config(config)
    return ListenerEnv(World.from_config(cfg), cfg.session, render_mode=render_mode)


def make_vector_env(num_envs: int = 1, config: str = "sim/config/env.yml", **_: object) -> ListenerVectorEnv:
    from sim.config import load_config
    from sim.world import World
    cfg = load_config(config)
    return ListenerVectorEnv(World.from_config(cfg), cfg.session, num_envs)


if "Botify/Listener-v0" not in gymnasium.registry:
    gymnasium.register("Botify/Listener-v0", entry_point="sim.envs:make_env",
                       vector_entry_point="sim.envs:make_vector_env")
