"""The batched evaluation path gives the runner's rows for the same sessions."""
from __future__ import annotations

import numpy as np
import pytest

from sim.batch import BatchDummy, play_batched
from sim.config import load_config
from sim.envs import ListenerEnv, ListenerVectorEnv
from sim.run import play_sessions
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

    def end_session(self, user, last_track, last_time):
        pass

    def end_sessions(self, users, last_tracks, last_times):
        self.ended += len(users)


@pytest.mark.parametrize("num_envs", [1, 64])
def test_a_batch_plays_the_runners_sessions_row_for_row(setup, num_envs):
    """The VectorEnv, seeded session by session, is the single env's twin: whatever the
    batch size, the same recommender gets the rows the runner's hot loop gets."""
    cfg, w = setup
    agent = Replayer(w.n_tracks)
    rows = play_batched(ListenerVectorEnv(w, cfg.session, num_envs), agent, 150, seed=5, day=3)
    assert rows == play_sessions(ListenerEnv(w, cfg.session), agent, seed=5, day=3, first_episode=0, n=150)
    assert agent.ended >= 150


def test_large_batches_keep_the_first_sessions_and_the_model_statistics(setup):
    cfg, w = setup
    rows = play_batched(ListenerVectorEnv(w, cfg.session, 256), BatchDummy(w.n_tracks, 0), 3000, seed=1)
    assert [r.episode for r in rows] == list(range(3000))
    steps = np.array([r.steps for r in rows])
    reward = np.array([r.reward for r in rows])
    assert steps.min() >= 5 and (reward <= steps).all()
    # the same Random agent one session at a time: same distribution of rewards
    from sim.agents import DummyAgent
    single = play_sessions(ListenerEnv(w, cfg.session), DummyAgent(w.n_tracks), 1, 1, 0, 3000)
    r1 = np.array([r.reward for r in single])
    se = np.sqrt(reward.var() / len(reward) + r1.var() / len(r1))
    assert abs(reward.mean() - r1.mean()) < 4 * se
