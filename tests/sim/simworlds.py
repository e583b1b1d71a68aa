"""A hand-made world whose every listening time is known in advance, so each rule of
the user model can be checked against arithmetic rather than against the code."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.config import SessionConfig
from sim.world import World


def tiny_world(bias: float = 0.0, sharpness: float = 1.0) -> World:
    """8 tracks, 3 artists (0,0,0 | 1,1,1 | 2,2), 2-d embeddings; one user whose only
    interest is track 0. Track t has embedding (x_t, 0) and the session embedding is
    track 0's (1, 0), so dot(t, session) = x_t."""
    x = np.array([1.0, 0.5, 2.0, -1.0, 0.0, 3.0, 1.5, -0.5], dtype=np.float32)
    emb = np.stack([x, np.zeros_like(x)], axis=1)
    artist = np.array([0, 0, 0, 1, 1, 1, 2, 2], dtype=np.int32)
    nearest = np.array([[[5, 2, 6, 0, 1, 7, 4, 3, 3, 3][:3]]], dtype=np.int32)
    return World(dir=Path("."), embeddings=emb, track_artist=artist,
                 track_genre=np.zeros(8, dtype=np.int32), popularity=np.ones(8),
                 titles=[f"t{i}" for i in range(8)], artist_names=["a", "b", "c"],
                 genre_names=["g"], interests=[[0]], n_interests=np.array([1], dtype=np.int32),
                 consume_bias=np.array([bias]), consume_sharpness=np.array([sharpness]),
                 nearest=nearest)


def session(budget: int = 5, discount: float = 0.8, max_steps: int = 30) -> SessionConfig:
    return SessionConfig(budget=budget, artist_discount=discount, max_steps=max_steps)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))
