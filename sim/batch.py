"""Offline evaluation on a batch of sessions: ``ListenerVectorEnv`` driven by a
recommender that answers a whole batch at once (one numpy call per step for thousands
of sessions), producing the same per-episode rows as the runner.

A batch recommender has ``recommend_batch(users, prev_tracks, prev_times) -> tracks``
(int arrays of the batch's size) and may have ``end_sessions(users, last_tracks,
last_times)``. Sessions are counted in the order they start, each on its own streams
(``sim.seeds``) as the runner plays it, and exactly the first ``episodes`` are kept, so
long sessions are not under-represented and the rows are the runner's for the same
recommender.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sim.envs.vector import ListenerVectorEnv
from sim.run import Session
from sim.seeds import SessionStreams


class BatchDummy:
    """Uniformly random tracks for a whole batch (the Random baseline, batched)."""

    def __init__(self, n_tracks: int, seed: int | np.random.SeedSequence | None = None):
        self._n = n_tracks
        self._rng = np.random.default_rng(seed)

    def recommend_batch(self, users, prev_tracks, prev_times) -> np.ndarray:
        return self._rng.integers(self._n, size=len(users))


def play_batched(venv: ListenerVectorEnv, agent: Any, episodes: int, seed: int,
                 day: int = 1) -> list[Session]:
    """Play episodes 0..episodes-1 of ``day`` of ``seed`` to their end; rows as in the
    stats file, ordered by episode."""
    n = venv.num_envs
    obs, info = venv.reset(options={"streams": SessionStreams(seed, day)})
    end = getattr(agent, "end_sessions", None)
    session = np.arange(n)                 # which session each sub-env is playing
    first = obs["prev_track"].copy()
    started = n
    reward = np.zeros(n)
    steps = np.zeros(n, dtype=np.int64)
    restarting = np.zeros(n, dtype=bool)   # NEXT_STEP: this step restarts these sub-envs
    rows: list[Session] = []
    while len(rows) < episodes:
        actions = agent.recommend_batch(obs["user"], obs["prev_track"], info["prev_time"])
        users = obs["user"]
        obs, r, term, trunc, info = venv.step(np.asarray(actions, dtype=np.int64))
        if restarting.any():
            idx = np.flatnonzero(restarting)
            session[idx] = started + np.arange(len(idx))
            started += len(idx)
            first[idx] = obs["prev_track"][idx]
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
                rows.append(Session(day, int(session[i]), int(users[i]), int(first[i]), int(steps[i]),
                                    total, round(1.0 + total, 2), int(trunc[i])))
        restarting = done
    rows.sort(key=lambda row: row[1])
    return rows
