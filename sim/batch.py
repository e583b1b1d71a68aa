"""Offline evaluation on a batch of sessions: ``ListenerVectorEnv`` driven by a
recommender that answers a whole batch at once (one numpy call per step for thousands
of sessions), producing the same per-episode rows as the runner.

A batch recommender has ``recommend_batch(users, prev_tracks, prev_times) -> tracks``
(int arrays of the batch's size) and may have ``end_sessions(users, last_tracks,
last_times)``. Sessions are counted in the order they start and exactly the first
``episodes`` are kept, so long sessions are not under-represented.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from sim.envs.vector import ListenerVectorEnv


class BatchRecommender(Protocol):
    def recommend_batch(self, users: np.ndarray, prev_tracks: np.ndarray,
                        prev_times: np.ndarray) -> np.ndarray: ...


class BatchDummy:
    """Uniformly random tracks for a whole batch (the Random baseline, batched)."""

    def __init__(self, n_tracks: int, seed: int | np.random.SeedSequence | None = None):
        self._n = n_tracks
        self._rng = np.random.default_rng(seed)

    def recommend_batch(self, users, prev_tracks, prev_times) -> np.ndarray:
        return self._rng.integers(self._n, size=len(users))


def play_batched(venv: ListenerVectorEnv, agent: Any, episodes: int, seed: int,
                 day: int = 1) -> list[tuple]:
    """Play the first ``episodes`` sessions to their end; rows as in the stats file
    (``day, episode, user, steps, reward, time, truncated``), ordered by episode."""
    n = venv.num_envs
    obs, info = venv.reset(seed=seed)
    end = getattr(agent, "end_sessions", None)
    session = np.arange(n)                 # which session each sub-env is playing
    started = n
    reward = np.zeros(n)
    steps = np.zeros(n, dtype=np.int64)
    restarting = np.zeros(n, dtype=bool)   # NEXT_STEP: this step restarts these sub-envs
    rows: list[tuple] = []
    while len(rows) < episodes:
        actions = agent.recommend_batch(obs["user"], obs["prev_track"], info["prev_time"])
        users = obs["user"]
        obs, r, term, trunc, info = venv.step(np.asarray(actions, dtype=np.int64))
        if restarting.any():
            idx = np.flatnonzero(restarting)
            session[idx] = started + np.arange(len(idx))
            started += len(idx)
            reward[idx] = 0.0
            steps[idx] = 0
        live = ~restarting
        reward[live] += r[live]
        steps[live] += 1
        done = (term | trunc) & live
        if done.any():
            idx = np.flatnonzero(done)
            if end is not None:
                end(users[idx], obs["prev_track"][idx], info["prev_time"][idx])
            for i in idx[session[idx] < episodes]:
                total = round(float(reward[i]), 2)
                rows.append((day, int(session[i]), int(users[i]), int(steps[i]), total,
                             round(1.0 + total, 2), int(trunc[i])))
        restarting = done
    rows.sort(key=lambda row: row[1])
    return rows
