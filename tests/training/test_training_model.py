"""The embedding model learns planted structure, is reproducible, and its i2i lists rank
by its own score."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from training.learning.fit import FitConfig, fit
from training.learning.i2i import cap_per_group, model_i2i, topk_i2i
from training.learning.metrics import mse_report, ranking_report
from training.learning.model import EmbeddingModel
from training.learning.pairs import split_pairs


def planted_pairs(n=200, d=4, p=30000, seed=0):
    """time = sigmoid(3 <e_c, e_t> - 1) for hidden low-rank e: learnable, far from constant."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, d)) / np.sqrt(d) * 2
    c, t = rng.integers(n, size=p), rng.integers(n, size=p)
    y = 1 / (1 + np.exp(-(3 * (e[c] * e[t]).sum(1) - 1)))
    return pd.DataFrame({"context": c, "target": t, "time": y.astype(np.float32),
                         "user": rng.integers(100, size=p), "session_id": np.arange(p),
                         "timestamp": np.arange(p)}), e


@pytest.fixture(scope="module")
def split():
    pairs, _ = planted_pairs()
    return split_pairs(pairs, "random", seed=1)


def train_once(split, objective="mse", seed=7, epochs=40):
    torch.manual_seed(seed)
    model = EmbeddingModel(200, 8, sigmoid=objective == "bce")
    res = fit(model, split.train, split.val, FitConfig(objective=objective, batch_size=2048,
                                                         max_epochs=epochs, seed=seed, progress=False))
    return model, res


@pytest.mark.parametrize("objective", ["mse", "bce"])
def test_learns_planted_structure(split, objective):
    model, res = train_once(split, objective)
    m = mse_report(model, split.train, split.test)
    assert m["test_mse"] < 0.35 * m["test_mse_const"], m
    assert m["test_mse"] < 0.25 * m["test_mse_random"], m
    assert res.val_loss[res.best_epoch] == min(res.val_loss)   # ends at its best epoch
    r = ranking_report(model, split.test, relevant_time=0.8)
    assert r["recall_at_50"] > 2 * 50 / 200                   # far above chance


def test_same_seed_same_metrics_other_seed_differs(split):
    a, ra = train_once(split, seed=11, epochs=3)
    b, rb = train_once(split, seed=11, epochs=3)
    c, rc = train_once(split, seed=12, epochs=3)
    assert ra.val_loss == rb.val_loss and ra.train_loss == rb.train_loss
    assert mse_report(a, split.train, split.test) == mse_report(b, split.train, split.test)
    assert ra.val_loss != rc.val_loss


def test_early_stopping_stops():
    pairs, _ = planted_pairs(p=3000, seed=5)
    pairs["time"] = np.random.default_rng(0).uniform(size=len(pairs)).astype(np.float32)  # pure noise
    sp = split_pairs(pairs, "random", seed=0)
    model = EmbeddingModel(200, 16)
    res = fit(model, sp.train, sp.val, FitConfig(max_epochs=100, patience=2, batch_size=256,
                                                 progress=False))
    assert res.stopped_early and len(res.val_loss) < 100


def test_topk_matches_brute_force_and_excludes_self():
    rng = np.random.default_rng(0)
    ctx, tgt, bias = rng.normal(size=(301, 6)), rng.normal(size=(301, 6)), rng.normal(size=301)
    idx, val = topk_i2i(ctx, tgt, bias, k=20, block=64)     # several blocks, a ragged last one
    full = ctx @ tgt.T + bias
    np.fill_diagonal(full, -np.inf)
    expect = np.argsort(-full, axis=1, kind="stable")[:, :20]
    assert idx.shape == (301, 20)
    assert (idx != np.arange(301)[:, None]).all()
    np.testing.assert_allclose(val, np.take_along_axis(full, expect, 1), rtol=1e-5, atol=1e-5)
    assert (np.diff(val, axis=1) <= 1e-6).all()


def test_model_lists_rank_by_model_score_with_features_and_match():
    rng = np.random.default_rng(1)
    artist, genre = rng.integers(10, size=120), rng.integers(3, size=120)
    torch.manual_seed(0)
    m = EmbeddingModel(120, 5, artist=artist, genre=genre, n_artists=10, n_genres=3, tied=True,
                       match=True, sigmoid=True)
    with torch.no_grad():
        m.match_weights.copy_(torch.tensor([0.7, -0.3]))
    lists = model_i2i(m, k=15)
    with torch.no_grad():
        scores = m(torch.arange(120)).numpy()               # what the logged model serves
    for t in range(0, 120, 7):
        s = scores[t].copy()
        s[t] = -np.inf
        got = s[lists[t]]
        assert (np.diff(got) <= 1e-5).all()
        assert got[-1] >= np.sort(s)[-15] - 1e-5           # nothing better left out


def test_cap_per_group_keeps_order_and_caps():
    cands = np.array([[5, 6, 7, 8, 9, 1, 2]])
    group = np.array([0, 1, 0, 0, 0, 2, 1, 1, 2, 0])         # groups of cands: 2 1 1 2 0 1 0
    assert cap_per_group(cands, group, 5, 1).tolist() == [[5, 6, 9, 7, 8]]
    assert cap_per_group(cands, group, 6, 2).tolist() == [[5, 6, 7, 8, 9, 2]]
    rng = np.random.default_rng(0)
    many = np.argsort(rng.normal(size=(50, 400)), axis=1)
    g = rng.integers(40, size=400)
    out = cap_per_group(many, g, 30, 2)
    for row, src in zip(out, many):
        assert np.bincount(g[row]).max() <= 2
        pos = {t: i for i, t in enumerate(src)}
        assert [pos[t] for t in row] == sorted(pos[t] for t in row)


def test_session_learner_finds_hidden_clusters_from_co_listening(planted):
    """With no catalog features at all, the co-listening learner's lists put the planted
    clusters (tracks by artist, hidden from it) together: several times chance."""
    from training.learning.train import TrainConfig, build_model, fit_config, prepare
    world, log, _ = planted
    artist = np.arange(300) % 30

    def same_cluster_share():
        cfg = TrainConfig.from_yaml("training/config/session.yml", features=False,
                                    match=False, feature_tables=False, i2i_max_per_artist=0, max_epochs=15)
        data = prepare(cfg, [str(log)], str(world))
        model = build_model(cfg, data.catalog)
        fit(model, data.split.train, data.split.val, fit_config(cfg, progress=False))
        lists = model_i2i(model, k=5)
        return float((artist[lists] == artist[:, None]).mean())

    assert same_cluster_share() > 5 * 9 / 299     # chance: 9 of the 299 other tracks share its cluster


def test_duels_teach_what_listeners_biases_hide():
    """Each listener has a bias of their own that shifts every time they give (the course's
    consume_bias): absolute times then say little about the tracks, the within-session
    comparison cancels it. Here the generous listeners were mostly served the worse tracks:
    trained on the times alone the model ranks the better track of a duel first almost
    never (0.01), with the duel loss mostly (0.84)."""
    from training.learning.pairs import build_duels
    rng = np.random.default_rng(3)
    n, n_sessions = 60, 3000
    good = rng.random(n) < 0.5                    # hidden: half the tracks are liked by everyone
    ctx = np.zeros(n_sessions * 4, dtype=np.int64)            # one anchor (track 0) for all
    sid = np.repeat(np.arange(n_sessions), 4)
    tgt = np.concatenate([rng.choice(np.arange(1, n), 4, replace=False) for _ in range(n_sessions)])
    bias = np.repeat(rng.random(n_sessions) < 0.5, 4)        # half the listeners listen long to anything
    time = np.clip(np.where(bias, 0.8, 0.0) + np.where(good[tgt], 0.15, 0.0)
                   + rng.normal(0, 0.02, len(tgt)), 0, 1).astype(np.float32)
    # and the generous listeners happened to be served the worse tracks more often
    swap = bias & good[tgt] & (rng.random(len(tgt)) < 0.6)
    tgt[swap] = rng.choice(np.flatnonzero(~good[1:]) + 1, int(swap.sum()))
    time[swap] = np.clip(0.8 + rng.normal(0, 0.02, int(swap.sum())), 0, 1)
    pairs = pd.DataFrame({"context": ctx, "target": tgt, "time": time, "user": sid, "session_id": sid,
                          "timestamp": np.arange(len(tgt)), "repeat": False, "artist_plays": 0})
    sp = split_pairs(pairs, "by_user", seed=0)
    artist = np.arange(n)
    first = pd.Series(np.zeros(n_sessions, dtype=np.int64), index=np.arange(n_sessions))
    duels = (build_duels(sp.train, first, artist), build_duels(sp.val, first, artist))
    test = build_duels(sp.test, first, artist)
    test = test[good[test["winner"]] != good[test["loser"]]]      # the duels the truth decides
    assert len(test) > 100

    def won(weight):
        torch.manual_seed(0)
        model = EmbeddingModel(n, 4)
        fit(model, sp.train, sp.val, FitConfig(max_epochs=30, lr=0.05, batch_size=512, patience=5,
                                               duel_weight=weight, progress=False), duels=duels)
        with torch.no_grad():
            better = np.where(good[test["winner"]], test["winner"], test["loser"])
            worse = np.where(good[test["winner"]], test["loser"], test["winner"])
            c = torch.as_tensor(test["context"].to_numpy(copy=True))
            s = model.pair_scores(c, torch.as_tensor(better)) - model.pair_scores(c, torch.as_tensor(worse))
        return float((s > 0).float().mean())

    without, with_duels = won(0.0), won(1.0)
    assert without < 0.25        # fooled: the generous listeners' long listens of worse tracks
    assert with_duels > 0.75
