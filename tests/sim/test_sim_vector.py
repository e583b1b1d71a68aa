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


@pytest.mark.parametrize("seed", [123, [123, 7, 99]])
def test_each_sub_env_replays_the_env_of_its_seed_across_autoresets(setup, seed):
    """Sub-environment i is ListenerEnv.reset(seed=s_i) followed by unseeded resets: the
    same sessions, draw for draw (Gymnasium's rule: an int seeds sub-environment i with
    seed + i)."""
    cfg, w = setup
    seeds = [seed] if isinstance(seed, int) else seed
    n = len(seeds)
    venv = ListenerVectorEnv(w, cfg.session, num_envs=n)
    vobs, vinfo = venv.reset(seed=seed if n > 1 else seeds[0])
    envs = [ListenerEnv(w, cfg.session) for _ in seeds]
    obs = [e.reset(seed=s)[0] for e, s in zip(envs, seeds)]
    assert [(o["user"], o["prev_track"]) for o in obs] == list(zip(vobs["user"], vobs["prev_track"]))
    rng = np.random.default_rng(9)
    restarting = np.zeros(n, dtype=bool)
    episodes = 0
    for _ in range(3000 // n):
        a = rng.integers(w.n_tracks, size=n)
        vobs, vr, vterm, vtrunc, vinfo = venv.step(a)
        for i in range(n):
            if restarting[i]:        # NEXT_STEP autoreset: the new session's start, reward 0
                assert vr[i] == 0.0 and not vterm[i] and not vtrunc[i]
                assert (vobs["user"][i], vobs["prev_track"][i]) == (obs[i]["user"], obs[i]["prev_track"])
                continue
            obs[i], r, term, trunc, info = envs[i].step(int(a[i]))
            assert (vr[i], vterm[i], vtrunc[i], vinfo["prev_time"][i]) == (r, term, trunc, info["prev_time"])
            if term or trunc:
                episodes += 1
                obs[i], _ = envs[i].reset()
        restarting = vterm | vtrunc
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
    with pytest.raises(ValueError, match="a list of 2 seeds"):
        venv.reset(seed=[1, 2, 3])
    venv.reset(seed=0)
    with pytest.raises(UnknownTrackError, match="integer array of shape"):
        venv.step(np.array([0.5, 1.0]))
