"""The policy's constants are learned from the service's logs, not copied from the simulator:
a small world whose listeners discount each replay of an artist by 0.6 (or 0.8) plays a day
through the real service in-process; a learner's version trained on that day's log carries
the discount it learned, and a service over that version uses it."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from formats import learned as learned_format
from sim.agents import inprocess_agent
from sim.config import load_config
from sim.envs.listener import ListenerEnv
from sim.judge import judge
from sim.world import World
from training.data.catalog import load_catalog
from training.learning import policy_params
from training.learning.layout import catalog_lists
from training.learning.learn import train_learner
from training.learning.learners.base import LearnerSpec
from training.learning.window import Window
from training.registry import versions

#: how far the learned discount may sit from the simulator's: 700 sessions give ~2,000 replays,
#: most listeners at their ceiling, so the median ratio lands within a rounding step of it
TOLERANCE = 0.02


def service_config(path, catalog, recommenders, arms, log=None) -> str:
    path.write_text(yaml.safe_dump({
        "catalog": str(catalog), "seed": 42, "event_log": {"dir": str(log)} if log else False,
        "session_store": {"kind": "memory", "ttl_seconds": 600}, "recommenders": recommenders,
        "experiments": [{"name": "DAY", "arms": arms}]}))
    return str(path)


@pytest.fixture(scope="module", params=[0.6, 0.8], ids=["discount0.6", "discount0.8"])
def played(request, small_world, repo, tmp_path_factory):
    """A day of Random, StickyArtist and SessionAware over the catalog's lists on the small
    world whose listeners discount replays by the param; returns (the discount, the day's log,
    the world folder)."""
    d = tmp_path_factory.mktemp("day")
    sim_cfg = yaml.safe_load((repo / "sim" / "config" / "small.yml").read_text())
    sim_cfg["session"]["artist_discount"] = request.param
    sim_cfg["world"]["dir"] = str(small_world)
    (d / "sim.yml").write_text(yaml.safe_dump(sim_cfg))
    cfg = load_config(d / "sim.yml")
    env = ListenerEnv(World.load(cfg.world.dir), cfg.session)
    i2i = d / "catalog-i2i.npy"   # SessionAware over the catalog's lists: the policy's own picks
    np.save(i2i, catalog_lists(load_catalog(small_world), 50).astype(np.int32), allow_pickle=False)
    svc = service_config(d / "service.yml", small_world / "public" / "tracks.json",
                         {"random": {"kind": "random"}, "sticky": {"kind": "sticky_artist"},
                          "sa": {"kind": "session_aware", "i2i": str(i2i), "explore": 0.1}},
                         {"C": "random", "T1": "sticky", "T2": "sa"}, log=d / "logs")
    agent = inprocess_agent("service.botify:load", [svc])
    try:
        judge(env, agent, 700, seed=5)
    finally:
        agent.close()
    return request.param, d / "logs", small_world


def test_the_learned_discount_follows_the_simulators_and_the_service_uses_it(played, tmp_path):
    discount, logs, world = played
    window = Window((str(logs),), world, seed=3, days=(0,))
    res = train_learner(LearnerSpec("cooc", "cooccurrence"), window, k=20, register="botify-i2i-test")
    est = window.policy_estimates["discount"]
    assert est.count >= 1000 and abs(res.policy["discount"] - discount) <= TOLERANCE
    assert res.figures["policy.discount_n"] == est.count

    folder = versions.fetch(res.version, "botify-i2i-test", dst=tmp_path / "v")
    assert learned_format.read(folder).policy == res.policy
    # the service over that version, its config setting no constant: the lists' discount is used
    svc = service_config(tmp_path / "serve.yml", world / "public" / "tracks.json",
                         {"sa": {"kind": "session_aware", "i2i": str(folder / learned_format.TABLE)},
                          "sa_set": {"kind": "session_aware", "i2i": str(folder / learned_format.TABLE),
                                     "discount": 0.9}},
                         {"C": "sa", "T1": "sa_set"})
    service = inprocess_agent("service.botify:load", [svc])
    try:
        assert service.recommenders["sa"].discount == res.policy["discount"]
        assert service.recommenders["sa_set"].discount == 0.9      # the config wins
        assert service.status()["models"]["sa"]["learned"]["discount"] == res.policy["discount"]
    finally:
        service.close()


def test_every_constant_comes_with_its_count_and_thin_ones_stay_out_of_the_policy(played):
    _, logs, world = played
    window = Window((str(logs),), world)
    est = window.policy_estimates
    assert set(est) == set(policy_params.NAMES) and all(e.count > 0 for e in est.values())
    assert policy_params.policy(est, min_count=10**9) == {}
    assert 0 < est["fresh_start"].value <= 1 and 0 < est["first_artist_prior"].value <= 1 / est["discount"].value


def test_a_learners_own_policy_keys_survive_the_merge():
    merged = policy_params.merged({"explore_levels": [0.5], "discount": 0.7},
                                  {"discount": 0.6, "fresh_start": 0.5})
    assert merged == {"explore_levels": [0.5], "discount": 0.7, "fresh_start": 0.5}


def test_the_run_index_is_the_best_mean_time_per_play_of_a_run_played_while_worth_it():
    # a sure arm (always 1.0, then 0.5, 0.25, ...) is worth its first play: replays only lower the mean
    assert policy_params.run_index(np.array([1.0]), 0.5) == pytest.approx(1.0)
    # half the new artists loved (1.0), half disliked (0.0), discount 0.8: playing a loved one three
    # times gives (1 + 0.8 + 0.64) / 2 / (3 / 2 + 1 / 2) = 0.61, more than its mean first listen
    # (0.5): an untried artist is worth the replays a good first listen earns
    assert policy_params.run_index(np.array([1.0, 0.0]), 0.8) == pytest.approx(0.61, abs=1e-6)
