"""The batched evaluation path gives the runner's rows for the same sessions."""
from __future__ import annotations

import numpy as np
import pytest

from sim.batch import BatchDummy, play_batched
from sim.config import load_config
from sim.envs import ListenerEnv, ListenerVectorEnv
from sim.world import World


@pytest.fixture(scope="module")
def setup(small_world):
    cfg = load_config("sim/config/small.yml")
    return cfg, World.from_config(cfg)


class Replayer:
    """A batch recommender that answers each sub-env with prev_track + 1 (so the same
    logic can be run one session at a time)."""

    def __init__(self, n):
        self.n = n
        self.ended = 0

    def recommend_batch(self, users, prev_tracks, prev_times):
        return (prev_tracks + 1) % self.n

    def recommend_next(self, user, prev_track, prev_time):
        return (prev_track + 1) % self.n

    def end_sessions(self, users, last_tracks, last_times):
        self.ended += len(users)


def test_batch_of_one_gives_the_env_rows(setup):
    cfg, w = setup
    agent = Replayer(w.n_tracks)
    rows = play_batched(ListenerVectorEnv(w, cfg.session, 1), agent, 40, seed=5)
    env = ListenerEnv(w, cfg.session)
    obs, info = env.reset(seed=5)
    expected = []
    for e in range(40):
        if e:
            obs, info = env.reset()
        user, track, t, total, steps, done = obs["user"], obs["prev_track"], 1.0, 0.0, 0, False
        while not done:
            track = agent.recommend_next(user, track, t)
            obs, t, term, trunc, info = env.step(track)
            total += t
            steps += 1
            done = term or trunc
        expected.append((1, e, user, steps, round(total, 2), round(1 + round(total, 2), 2), int(trunc)))
    assert rows == expected
    assert agent.ended >= 40


def test_large_batches_keep_the_first_sessions_and_the_model_statistics(setup):
    cfg, w = setup
    rows = play_batched(ListenerVectorEnv(w, cfg.session, 256), BatchDummy(w.n_tracks, 0), 3000, seed=1)
    assert [r[1] for r in rows] == list(range(3000))
    steps = np.array([r[3] for r in rows])
    reward = np.array([r[4] for r in rows])
    assert steps.min() >= 5 and (reward <= steps).all()
    # the same Random agent one session at a time: same distribution of rewards
    from sim.agents import DummyAgent
    from sim.run import blocks, play_block
    env = ListenerEnv(w, cfg.session)
    single = []
    for b, start, n in blocks(3000):
        single.extend(play_block(env, DummyAgent(w.n_tracks), 1, 1, b, start, n))
    r1 = np.array([r[4] for r in single])
    se = np.sqrt(reward.var() / len(reward) + r1.var() / len(r1))
    assert abs(reward.mean() - r1.mean()) < 4 * se
