"""Gymnasium environments of the listener simulator: one session at a time
(:class:`ListenerEnv`, exact and per-request) and a batch of sessions stepped with numpy
(:class:`ListenerVectorEnv`, for fast offline evaluation)."""
from sim.envs.listener import ListenerEnv, UnknownTrackError
from sim.envs.vector import ListenerVectorEnv

__all__ = ["ListenerEnv", "ListenerVectorEnv", "UnknownTrackError"]
