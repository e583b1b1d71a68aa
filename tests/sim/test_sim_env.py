"""Each rule of the course's user model, checked on a hand-made world whose times are
known, plus the Gymnasium contract (env checker) and bad actions."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sim.config import load_config
from sim.envs import ListenerEnv, UnknownTrackError
from sim.world import World
from simworlds import session, sigmoid, tiny_world


def test_time_is_the_rounded_sigmoid_of_the_affinity():
    env = ListenerEnv(tiny_world(bias=1.0, sharpness=1.5), session())
    env.reset(seed=0, options={"first_track": 5})        # artist 1 played once
    _, t, *_ = env.step(6)                                 # artist 2: no discount, x = 1.5
    assert t == round(sigmoid((1.5 - 1.0) * 1.5), 2)
    _, t, *_ = env.step(1)                                 # artist 0, x = 0.5
    assert t == round(sigmoid((0.5 - 1.0) * 1.5), 2)


def test_artist_discount_compounds_with_each_play_of_the_artist():
    env = ListenerEnv(tiny_world(bias=-20.0), session(discount=0.8))   # raw == 1.0
    env.reset(seed=0, options={"first_track": 5})        # artist 1 (tracks 3, 4, 5)
    _, t3, *_ = env.step(3)
    _, t4, *_ = env.step(4)
    _, t0, *_ = env.step(0)                                # artist 0, first play
    _, t1, *_ = env.step(1)
    assert (t3, t4, t0, t1) == (0.8, 0.64, 1.0, 0.8)


def test_a_repeat_scores_zero_and_counts_as_a_play_of_its_artist():
    env = ListenerEnv(tiny_world(bias=-20.0), session(discount=0.5))
    env.reset(seed=0, options={"first_track": 5})
    _, t, *_ = env.step(5)            # the first track again
    assert t == 0.0
    _, t, *_ = env.step(6)
    _, t, *_ = env.step(6)
    assert t == 0.0
    _, t, *_ = env.step(7)            # artist 2 played twice already (one was a repeat)
    assert t == 0.25


def test_budget_drops_on_every_zero_time_track():
    env = ListenerEnv(tiny_world(bias=50.0), session(budget=5))      # every time rounds to 0
    env.reset(seed=3)
    results = [env.step(a)[1:4] for a in (0, 1, 2, 3, 4)]
    assert [r[0] for r in results] == [0.0] * 5
    assert [r[1] for r in results] == [False] * 4 + [True]
    assert not any(r[2] for r in results)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(6)


def test_budget_drops_with_probability_one_minus_time():
    world = tiny_world(bias=0.0)
    world.embeddings[:] = 0.0                     # x = 0 for every track: time 0.5
    env = ListenerEnv(world, session(budget=5, discount=1.0))
    env.reset(seed=11)
    drops, n = 0, 4000
    for _ in range(n):
        env.reset()
        first = env.history[0][0]
        _, t, *_ = env.step(1 if first != 1 else 2)
        assert t == 0.5
        drops += env.budget == 4
    assert abs(drops / n - 0.5) < 4 * np.sqrt(0.25 / n)


def test_a_session_of_perfect_tracks_is_truncated_at_max_steps():
    world = tiny_world(bias=-50.0)                  # raw 1.0 everywhere
    world.track_artist[:] = np.arange(8)            # no artist repeats: every time is 1.0
    env = ListenerEnv(world, session(max_steps=6))
    obs, info = env.reset(seed=0, options={"first_track": 5})
    assert info == {"prev_time": 1.0} and obs == {"user": 0, "prev_track": 5}
    flags = []
    for a in (0, 1, 2, 3, 4, 6):
        _, t, term, trunc, info = env.step(a)
        assert t == 1.0 and info == {"prev_time": 1.0}
        flags.append((term, trunc))
    assert flags == [(False, False)] * 5 + [(False, True)]
    assert env.budget == 5


def test_first_track_is_one_of_the_ten_nearest_to_an_interest(small_world):
    cfg = load_config("sim/config/small.yml")
    w = World.from_config(cfg)
    env = ListenerEnv(w, cfg.session)
    env.reset(seed=5)
    users = set()
    for _ in range(300):
        obs, info = env.reset()
        user, first = obs["user"], obs["prev_track"]
        users.add(user)
        interest = w.interests[user][env.interest]
        np.testing.assert_array_equal(env.session_embedding, w.embeddings64[interest])
        scores = w.embeddings @ w.embeddings[interest]
        assert first in np.argsort(-scores, kind="stable")[:10]
        assert info["prev_time"] == 1.0
    assert len(users) > 150, "users are drawn across the population"


def test_same_seed_same_sessions(small_world):
    cfg = load_config("sim/config/small.yml")
    w = World.from_config(cfg)

    def play(seed):
        env = ListenerEnv(w, cfg.session)
        env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(30):
            obs, _ = env.reset()
            done = False
            while not done:
                obs, t, term, trunc, _ = env.step(int(rng.integers(w.n_tracks)))
                out.append((obs["user"], obs["prev_track"], t, term, trunc))
                done = term or trunc
        return out

    assert play(1) == play(1)
    assert play(1) != play(2)


def test_env_checker_passes(small_world):
    cfg = load_config("sim/config/small.yml")
    env = ListenerEnv(World.from_config(cfg), cfg.session)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*spec.*")   # not registered via gym.make
        warnings.filterwarnings("error")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("action", [8, -1, 10**9])
def test_a_track_outside_the_catalog_is_an_error_naming_it(action):
    env = ListenerEnv(tiny_world(), session())
    env.reset(seed=0)
    with pytest.raises(UnknownTrackError, match=rf"track {action} is not in the catalog"):
        env.step(action)


def test_a_non_integer_action_is_an_error_naming_it():
    env = ListenerEnv(tiny_world(), session())
    env.reset(seed=0)
    with pytest.raises(UnknownTrackError, match="1.5"):
        env.step(1.5)
    _, t, *_ = env.step(np.int64(2))      # numpy integers are fine
    assert t >= 0.0


def test_render_lists_the_session():
    env = ListenerEnv(tiny_world(), session(), render_mode="ansi")
    env.reset(seed=0, options={"first_track": 2})
    env.step(6)
    text = env.render()
    assert "user 0" in text and "t2" in text and "t6" in text


def test_registered_env_passes_the_checker_through_gymnasium_make(small_world):
    import gymnasium
    env = gymnasium.make("Botify/Listener-v0", config="sim/config/small.yml")
    with warnings.catch_warnings():
        warnings.filterwarnings("error")
        check_env(env.unwrapped)
    envs = gymnasium.make_vec("Botify/Listener-v0", num_envs=3, vectorization_mode="vector_entry_point",
                              config="sim/config/small.yml")
    obs, _ = envs.reset(seed=0)
    assert obs["user"].shape == (3,)


def test_pinning_the_start_does_not_shift_the_responses(small_world):
    """The start's three numbers are drawn even when options pin it, so a pinned session
    meets the same response draws as the drawn one."""
    cfg = load_config("sim/config/small.yml")
    w = World.from_config(cfg)
    drawn, pinned = ListenerEnv(w, cfg.session), ListenerEnv(w, cfg.session)
    uncertain = 0
    for seed in range(8, 20):
        obs, _ = drawn.reset(seed=seed)
        pinned.reset(seed=seed, options={"user": drawn.user, "interest": drawn.interest,
                                         "first_track": obs["prev_track"]})
        ranked = np.argsort(-(w.embeddings64 @ drawn.session_embedding)).tolist()
        ranked.remove(obs["prev_track"])
        done, steps = False, 0
        while not done:
            got, want = pinned.step(ranked[steps]), drawn.step(ranked[steps])
            assert got == want and pinned.budget == drawn.budget
            done, steps, uncertain = got[2] or got[3], steps + 1, uncertain + (0 < got[1] < 1)
    assert uncertain > 50   # steps whose budget draw decided something
