"""The artist learner (training/learning/learners/artist.py) on the small world's logs: lists in
the one layout, an exploration table of pairs the logs never tried, served by the exploring
policy from beside the lists; the listener-calibrated pair effect; the exploration shares
priced from the logs (training/learning/exploration.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from formats import learned as learned_format
from training.learning.exploration import Pricing, exploring_arms, level_shares, new_artist_steps
from training.learning.learners import artist as A
from training.learning.learners.base import LearnerSpec
from training.learning.window import Window

K = 50
SPEC = LearnerSpec("artist", "artist", "training/config/learners/artist.yml")
META = {"name": "artist", "learner": "artist", "config": {}, "window": {}, "figures": {}}


def play(world: Path, folder: Path, recommenders: dict, arms: dict, episodes: int, seed: int) -> Path:
    """One day of the service's logs, played in-process by the simulator's judge."""
    from service.botify import load
    from sim.config import load_config
    from sim.envs.listener import ListenerEnv
    from sim.judge import judge
    from sim.world import World
    cfg = load_config(Path(__file__).resolve().parents[2] / "sim" / "config" / "small.yml")
    config = folder.with_suffix(".yml")
    config.write_text(yaml.safe_dump({
        "catalog": str(world / "public" / "tracks.json"), "seed": 42, "event_log": {"dir": str(folder)},
        "session_store": {"kind": "memory", "ttl_seconds": 60}, "recommenders": recommenders,
        "experiments": [{"name": "DAY", "arms": arms}]}))
    agent = load(config)
    try:
        judge(ListenerEnv(World.load(world), cfg.session), agent, episodes, seed)
    finally:
        agent.close()
    return folder


@pytest.fixture(scope="module")
def days(small_world, repo, tmp_path_factory):
    """Day 0: Random and SessionAware over the catalog's lists; the artist learner on it; day 1:
    Random and the exploring policy over that version's lists (twice, as the loop's 2x2 does)."""
    from formats import lists as list_format
    from training.learning.layout import catalog_lists
    d = tmp_path_factory.mktemp("artist-days")
    window0 = Window((str(d / "day0"),), small_world, seed=5, days=(0,))
    i2i = list_format.write_jsonl(d / "catalog-i2i.jsonl", catalog_lists(window0.catalog, K))
    play(small_world, d / "day0", {"random": {"kind": "random"}, "sa": {
        "kind": "session_aware", "i2i": str(i2i), "listed_artists": "any"}}, {"C": "random", "T1": "sa"}, 500, 11)
    learned = SPEC.make(repo).learn(window0, K, d / "work0")
    v0 = learned_format.write(d / "v0", learned.lists, policy=learned.policy, learner=META, explore=learned.explore)
    x = {"kind": "exploring", "i2i": str(v0 / "i2i.npy"), "explore": 0.5, "listed_artists": "any",
         "new_artists": "session"}
    play(small_world, d / "day1", {"random": {"kind": "random"}, "x1": x, "x2": dict(x)},
         {"C": "random", "T1": "x1", "T2": "x2"}, 500, 12)
    return small_world, d, learned


def test_the_lists_and_the_table_are_what_the_service_reads(days, repo):
    world, d, learned = days
    window = Window((str(d / "day0"),), world, seed=5, days=(0,))
    cat = window.catalog
    cand, weight = learned_format.check_explore(*learned.explore, cat.n_artists)
    assert cand.shape == (cat.n_artists, 16) and ((cand >= 0) == (weight > 0)).all()
    # candidates are pairs the window never tried, of the artist's own public tag
    obs = A.observations(window.sessions, cat.artist)
    tried = set(zip(obs["a"], obs["c"])) | set(zip(obs["c"], obs["a"]))
    tags = A.artist_tags(cat.artist, cat.genre, cat.n_artists)
    rows, cols = np.nonzero(cand >= 0)
    assert len(rows) > cat.n_artists, "the table names candidates"
    assert not any((a, int(cand[a, j])) in tried for a, j in zip(rows, cols))
    assert (tags[cand[rows, cols]] == tags[rows]).all() and (cand[rows, cols] != rows).all()
    # the lists: the anchor's artist leads, then artists by score, two tracks each
    lists = learned.lists
    assert lists.shape == (cat.size, K) and (lists >= 0).all()
    assert (cat.artist[lists[:, :2]] == cat.artist[:, None]).all()
    assert np.array_equal(lists, SPEC.make(repo).learn(window, K, d / "again").lists), "same window, same lists"


def test_the_exploring_policy_logs_picks_beyond_the_lists_and_the_learner_prices_them(days, repo):
    world, d, _ = days
    window = Window((str(d / "day0"), str(d / "day1")), world, seed=5, days=(0, 1))
    steps = new_artist_steps(Window((str(d / "day1"),), world).sessions, window.catalog.artist)
    assert exploring_arms(steps) == ["DAY=T1", "DAY=T2"], "Random is not taken for an exploring arm"
    ex = steps[steps["arm"] != "DAY=C"]
    assert (ex["p"] < 0.5).sum() > 20 and ((ex["p"] >= 0.5) & (ex["p"] < 1)).sum() > 20
    learned = SPEC.make(repo).learn(window, K, d / "work1")
    if "explore_levels" in learned.policy:   # priced when the day had picks enough
        shares = learned_format.read_levels(learned.policy["explore_levels"])
        assert [e for e, _ in shares] == [0.2, 0.4, 0.6, 0.8, 1.0] and all(0.02 <= s <= 0.5 for _, s in shares)
    assert learned.figures["explore_picks"] > 0


def _steps(rng, level: float, n: int, gap: float, arm: str = "E=T1", share: float = 0.3) -> pd.DataFrame:
    ex = rng.random(n) < share
    t = np.clip(0.6 - np.where(ex, gap, 0.0) + 0.05 * rng.standard_normal(n), 0, 1)
    return pd.DataFrame({"arm": arm, "p": np.where(ex, 0.05, 0.9), "level": level, "time": t})


def test_the_cheapest_levels_get_the_exploration_within_the_budget():
    rng = np.random.default_rng(0)
    steps = pd.concat([_steps(rng, 0.1, 2000, 0.01), _steps(rng, 0.5, 2000, 0.3), _steps(rng, 0.9, 2000, 0.2),
                       pd.DataFrame({"arm": "E=C", "p": 1e-4, "level": 0.5, "time": 0.0}, index=range(500))],
                      ignore_index=True)
    assert exploring_arms(steps) == ["E=T1"]
    pricing = Pricing(budget=0.05)
    shares, figures = level_shares(steps, pricing)
    by = dict(shares)
    assert by[0.2] == 0.5, "a level where exploring costs almost nothing explores most"
    assert by[0.6] == 0.02 and 0.02 < by[1.0] < 0.5, "the dearest level keeps the floor, the next takes the rest"
    assert figures["explore_price.level2"] == pytest.approx(0.3, abs=0.02)
    # the expected loss stays within the budget of the new-artist steps' time
    n = np.array([2000, 1, 2000, 1, 2000])
    gap = np.array([figures[f"explore_price.level{k}"] for k in range(5)])
    loss = float((np.array([s for _, s in shares]) * n * gap).sum())
    assert loss <= pricing.budget * 0.6 * n.sum() * 1.01
    assert level_shares(steps.iloc[:30], pricing)[0] is None, "too few picks: the policy keeps its own share"


def test_the_listener_calibrated_pair_effect_ranks_what_raw_times_rank_wrong():
    # artists 1 and 2 are mates of artist 0, 3 and 4 are not; the listeners who tried 3 and 4
    # like everything, those who tried 1 and 2 like little: raw times rank the non-mates first
    rows = []
    for u in range(40):
        generous = u % 2 == 0
        mate_t, other_t = (0.99, 0.9) if generous else (0.3, 0.01)
        for c in ((3, 4) if generous else (1, 2)):
            rows.append((u, 0, c, other_t if c in (3, 4) else mate_t))
        rows.append((u, 0, 1 if generous else 3, mate_t if generous else other_t))
    obs = pd.DataFrame(rows, columns=["u", "a", "c", "t"])
    raw = obs.groupby("c")["t"].mean()
    assert raw[3] > raw[2]
    obs["y"] = A.logit(obs["t"].to_numpy())
    M, N = A.pair_effects(obs[["u", "a", "c", "y"]], 5, shrink=1.0, iters=10)
    assert min(M[0, 1], M[0, 2]) > max(M[0, 3], M[0, 4])
    assert N[0, 1] == N[1, 0] == 40
