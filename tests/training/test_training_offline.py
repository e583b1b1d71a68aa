"""The offline evaluation against hand-computed values on a hand-written log."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.learning import offline
from training.data.catalog import load_catalog
from training.data.events import read_events

ARTIST = [0, 0, 1, 1, 2, 2, 3, 3]   # track t's artist; one genre


def write_world(root: Path) -> Path:
    pub = root / "public"
    pub.mkdir(parents=True)
    with open(pub / "tracks.json", "w") as fh:
        for t, a in enumerate(ARTIST):
            fh.write(json.dumps({"track": t, "artist": f"a{a}", "title": f"t{t}", "genre": "g",
                                 "year": 2000, "popularity": float(8 - t)}) + "\n")
    return root


def ev(msg, ts, user, track, time, rec=None, p=None):
    return {"message": msg, "timestamp": ts, "user": user, "track": track, "time": time, "latency": 0.0,
            "recommendation": rec, "propensity": p, "experiments": {}}


# session 1 (user 1): anchor 0 -> 2 (0.8) -> 4 (0.2) -> 6 (0.6); session 2 (user 2): anchor 1 -> 3 (0.9)
LOG = [ev("next", 1, 1, 0, 1.0, 2, 1.0), ev("next", 2, 2, 1, 1.0, 3, 0.5), ev("next", 3, 1, 2, 0.8, 4, 0.5),
       ev("next", 4, 1, 4, 0.2, 6, 0.25), ev("last", 5, 1, 6, 0.6), ev("last", 6, 2, 3, 0.9)]


@pytest.fixture
def held(tmp_path):
    world = write_world(tmp_path / "world")
    log = tmp_path / "events-0.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in LOG))
    return offline.prepare(read_events(log), load_catalog(world)), world


def lists(rows: dict[int, list[int]]) -> np.ndarray:
    table = np.array([[(t + 1) % 8, (t + 2) % 8] for t in range(8)])
    for t, r in rows.items():
        table[t] = r
    return table


def test_list_figures_by_hand(held):
    h, _ = held
    got = offline.list_figures(lists({0: [6, 2], 1: [2, 7]}), h, k=2)
    # session 1: long listens 2 (0.8) and 6 (0.6), both in [6, 2]; session 2: 3 not in [2, 7]
    assert got["recall@2"] == pytest.approx(0.5)
    # session 1: DCG 0.6/log2(2) + 0.8/log2(3) over the ideal 0.8 + 0.6/log2(3); session 2: 0
    dcg, idcg = 0.6 + 0.8 / np.log2(3), 0.8 + 0.6 / np.log2(3)
    assert got["ndcg@2"] == pytest.approx((dcg / idcg + 0.0) / 2)
    # new artists listened long: s1 artists 1 and 3 (both among [6, 2]'s), s2 artist 1 (track 2's)
    assert got["artist_recall@2"] == pytest.approx(1.0)
    # listened time of the logged tracks in the list: s1 (0.8 + 0.6) / 2, s2 has none
    assert got["list_time@2"] == pytest.approx(0.7)
    # ... of the logged new artists in the list: s1 tracks 2, 6 -> 0.7; s2 track 3 -> 0.9
    assert got["artist_time@2"] == pytest.approx(0.8)
    assert got["coverage@2"] == pytest.approx(2 / 4)


def test_a_list_that_misses_everything_scores_zero(held):
    h, _ = held
    got = offline.list_figures(lists({0: [5, 4], 1: [5, 4]}), h, k=2)
    assert got["recall@2"] == got["artist_recall@2"] == 0.0
    # ndcg's gain is any logged time: track 4 (0.2) at rank 2 of session 1
    assert got["ndcg@2"] == pytest.approx((0.2 / np.log2(3)) / (0.8 + 0.6 / np.log2(3)) / 2)
    assert got["list_time@2"] == pytest.approx(0.2)   # only track 4 (0.2) of session 1 is listed
    with pytest.raises(ValueError, match="tracks=8"):
        offline.list_figures(np.zeros((3, 2), dtype=int), h)


def test_snips_by_hand():
    # weights 1/0.5, 0, 1/0.2: (2 * 1 + 5 * 0.5) / 7; ESS 7^2 / (2^2 + 5^2)
    est, ess = offline.snips([1.0, 0.0, 0.5], [1.0, 0.0, 1.0], [0.5, 0.25, 0.2])
    assert est == pytest.approx(4.5 / 7) and ess == pytest.approx(49 / 29)
    # a stochastic target: weights 0.5/0.5 and 0.25/0.25 -> the plain mean of those two
    assert offline.snips([1.0, 0.0], [0.5, 0.25], [0.5, 0.25])[0] == pytest.approx(0.5)
    assert np.isnan(offline.snips([1.0], [0.0], [0.5])[0])
    with pytest.raises(ValueError, match="propensities"):
        offline.snips([1.0], [1.0], [0.0])


def test_replay_snips_replays_session_aware_on_logged_prefixes(held):
    from service.catalog import load_catalog as service_catalog
    h, world = held
    cat = service_catalog(world / "public" / "tracks.json")
    # strategy seed: first unheard of the anchor's list. Anchor 0's list [6, 2]: it picks 6 at
    # every prefix of session 1; only the third logged recommendation (6, propensity 0.25,
    # listened 0.6) agrees. Session 2 (anchor 1, list [2, 7]) picks 2, logged 3: weight 0.
    got = offline.replay_snips(lists({0: [6, 2], 1: [2, 7]}), h, cat, {"strategy": "seed"})
    assert got["snips"] == pytest.approx(0.6)
    assert got["snips_events"] == 4 and got["snips_matches"] == 1 and got["snips_ess"] == pytest.approx(1.0)
    # lists that agree with the log but at prefix (0, 2, 4), where list [2, 4] is exhausted:
    # SessionAware's TopPop fallback (tracks 0..7 by popularity, heard 0, 2, 4) gives 6 the
    # starts 6 only: 1/8, against the logged 0.25. Weights 1, 2, 0.5, 2 (session 2 picks 3).
    got = offline.replay_snips(lists({0: [2, 4], 1: [3, 2]}), h, cat, {"strategy": "seed"})
    w = np.array([1 / 1.0, 1 / 0.5, (1 / 8) / 0.25, 1 / 0.5])
    r = np.array([0.8, 0.2, 0.6, 0.9])
    assert got["snips_matches"] == 4
    assert got["snips"] == pytest.approx((w * r).sum() / w.sum()) == pytest.approx(0.6)


def test_catalog_lists_are_artist_then_genre_by_popularity(tmp_path):
    cat = load_catalog(write_world(tmp_path / "w"))
    out = offline.catalog_lists(cat, k=4, max_per_artist=1)
    # popularity falls with the id: track 5's own artist's other track (4), then one per artist
    assert out[5].tolist() == [4, 0, 2, 6]
    assert out[0].tolist() == [1, 2, 4, 6]
    assert not (out == np.arange(8)[:, None]).any()


def test_spearman_uses_variants_named_in_both():
    assert offline.spearman({"a": 1, "b": 2, "c": 3, "x": 9}, {"a": 10, "b": 20, "c": 30}) == pytest.approx(1.0)
    assert offline.spearman({"a": 3, "b": 2, "c": 1}, {"a": 10, "b": 20, "c": 30}) == pytest.approx(-1.0)
    assert np.isnan(offline.spearman({"a": 1}, {"a": 1}))
    assert np.isnan(offline.spearman({"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 3}))


def test_score_files_names_each_variant(tmp_path):
    from formats.lists import write_jsonl as write_i2i
    world = write_world(tmp_path / "world")
    log = tmp_path / "logs" / "events-0.jsonl"
    log.parent.mkdir()
    log.write_text("".join(json.dumps(e) + "\n" for e in LOG))
    a = write_i2i(tmp_path / "a.jsonl", lists({0: [6, 2], 1: [2, 7]}))
    b = write_i2i(tmp_path / "b.jsonl", lists({0: [5, 4], 1: [5, 4]}))
    got = offline.score_files({"a": a, "b": b}, log.parent, world, k=2, session_aware={"strategy": "seed"})
    assert got["a"]["recall@2"] == pytest.approx(0.5) and got["b"]["recall@2"] == 0.0
    assert got["a"]["snips"] == pytest.approx(0.6)


def test_cli_scores_files_and_refuses_bad_arguments(tmp_path, capsys):
    from formats.lists import write_jsonl as write_i2i
    world = write_world(tmp_path / "world")
    log = tmp_path / "events-0.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in LOG))
    a = write_i2i(tmp_path / "a.jsonl", lists({0: [6, 2], 1: [2, 7]}))
    online = tmp_path / "online.json"
    online.write_text(json.dumps({"a": 2.0, "b": 1.0, "catalog": 0.5}))
    b = write_i2i(tmp_path / "b.jsonl", lists({0: [5, 4], 1: [5, 4]}))
    out = tmp_path / "table.json"
    assert offline.main(["--log", str(log), "--world", str(world), "--i2i", f"a={a}", "--i2i", f"b={b}",
                         "--catalog-reference", "--k", "2", "--online", str(online), "--output", str(out)]) == 0
    got = json.loads(out.read_text())
    assert set(got["figures"]) == {"a", "b", "catalog"}
    assert got["figures"]["a"]["recall@2"] == pytest.approx(0.5)
    assert "recall@2" in got["spearman"]
    capsys.readouterr()
    assert offline.main(["--log", str(log), "--world", str(world), "--i2i", str(a)]) == 2
    assert "NAME=PATH" in capsys.readouterr().err
    assert offline.main(["--log", str(tmp_path / "missing"), "--world", str(world), "--i2i", f"a={a}"]) == 2
