"""The batched VectorEnv is the same user model as the Env: same seed and actions give
the same sessions."""
from __future__ import annotations

import numpy as np
import pytest

from sim.config import load_config
from sim.envs import ListenerEnv, ListenerVectorEnv, UnknownTrackError
from sim.seeds import SessionStreams
from sim.world import World


@pytest.fixture(scope="module")
def setup(small_world):
    cfg = load_config("sim/config/small.yml")
    return cfg, World.from_config(cfg)


def test_one_sub_env_replays_the_env_exactly_across_autoresets(setup):
    cfg, w = setup
    env, venv = ListenerEnv(w, cfg.session), ListenerVectorEnv(w, cfg.session, num_envs=1)
    obs, info = env.reset(seed=123)
    vobs, vinfo = venv.reset(seed=123)
    rng = np.random.default_rng(9)
    episodes = 0
    for _ in range(3000):
        assert (vobs["user"][0], vobs["prev_track"][0]) == (obs["user"], obs["prev_track"])
        assert vinfo["prev_time"][0] == info["prev_time"]
        a = int(rng.integers(w.n_tracks))
        obs, r, term, trunc, info = env.step(a)
        vobs, vr, vterm, vtrunc, vinfo = venv.step(np.array([a]))
        assert (vr[0], vterm[0], vtrunc[0]) == (r, term, trunc)
        if term or trunc:
            episodes += 1
            obs, info = env.reset()
            vobs, vr, vterm, vtrunc, vinfo = venv.step(np.array([0]))   # NEXT_STEP autoreset
            assert vr[0] == 0.0 and not vterm[0] and not vtrunc[0]
    assert episodes > 100


def test_every_sub_env_scores_tracks_as_the_env_does(setup):
    """Sessions in a batch of 64 (with repeats and same-artist tracks) get the times an
    Env pinned to the same start gets for the same actions."""
    cfg, w = setup
    n = 64
    venv = ListenerVectorEnv(w, cfg.session, num_envs=n)
    vobs, _ = venv.reset(seed=4)
    envs = []
    for i in range(n):
        e = ListenerEnv(w, cfg.session)
        e.reset(seed=0, options={"user": int(venv.user[i]), "interest": int(venv.interest[i]),
                                 "first_track": int(vobs["prev_track"][i])})
        envs.append(e)
    rng = np.random.default_rng(1)
    alive = np.ones(n, dtype=bool)
    compared = 0
    for step in range(12):
        # mix fresh tracks, repeats of the previous one and tracks of the same artist
        a = rng.integers(w.n_tracks, size=n)
        if step % 3 == 1:
            a = venv.prev_track.copy()
        if step % 3 == 2:
            same = [np.flatnonzero(w.track_artist == w.track_artist[t]) for t in venv.prev_track]
            a = np.array([s[rng.integers(len(s))] for s in same])
        expected = venv.listen_time(a)
        _, r, term, trunc, _ = venv.step(a)
        for i in np.flatnonzero(alive):
            _, t, e_term, e_trunc, _ = envs[i].step(int(a[i]))
            assert r[i] == t == expected[i]
            compared += 1
            alive[i] = not (e_term or e_trunc)   # budgets drop on different random draws
        alive &= ~(term | trunc)
    assert compared > 200


def test_a_track_outside_the_catalog_is_an_error_naming_it(setup):
    cfg, w = setup
    venv = ListenerVectorEnv(w, cfg.session, num_envs=4)
    venv.reset(seed=0)
    with pytest.raises(UnknownTrackError, match=rf"track {w.n_tracks} \(sub-environment 2\)"):
        venv.step(np.array([0, 1, w.n_tracks, 3]))


def test_batched_observations_are_in_the_batched_space(setup):
    cfg, w = setup
    venv = ListenerVectorEnv(w, cfg.session, num_envs=8)
    obs, _ = venv.reset(seed=0)
    for _ in range(20):
        assert venv.observation_space.contains(obs)
        obs, *_ = venv.step(venv.action_space.sample())


def test_misuse_is_a_clear_error(setup):
    cfg, w = setup
    venv = ListenerVectorEnv(w, cfg.session, num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.array([0, 1]))
    with pytest.raises(ValueError, match="takes only the option streams"):
        venv.reset(seed=0, options={"user": 3})
    with pytest.raises(ValueError, match="not both"):
        venv.reset(seed=0, options={"streams": SessionStreams(0, 1)})
    venv.reset(seed=0)
    with pytest.raises(UnknownTrackError, match="integer array of shape"):
        venv.step(np.array([0.5, 1.0]))
