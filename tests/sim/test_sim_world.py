"""The world generator: determinism, the contract's file layout, the first-track cache."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from sim.config import load_config
from sim.world import World, WorldError, generate, is_current, write

SMALL = "sim/config/small.yml"


@pytest.fixture(scope="module")
def cfg():
    return load_config(SMALL)


def _tiny(cfg, **changes):
    w = dataclasses.replace(cfg.world, tracks=300, artists=30, users=50, **changes)
    return w


def test_same_seed_same_world_other_seed_other_world(cfg):
    a, b = generate(_tiny(cfg)), generate(_tiny(cfg))
    assert a["catalog"] == b["catalog"] and a["users"] == b["users"]
    np.testing.assert_array_equal(a["embeddings"], b["embeddings"])
    np.testing.assert_array_equal(a["nearest"], b["nearest"])
    c = generate(_tiny(cfg, seed=cfg.world.seed + 1))
    assert c["catalog"] != a["catalog"]
    assert not np.array_equal(c["embeddings"], a["embeddings"])


def test_catalog_follows_the_contract(small_world, cfg):
    rows = [json.loads(line) for line in (small_world / "public" / "tracks.json").open()]
    assert [r["track"] for r in rows] == list(range(cfg.world.tracks))
    for r in rows[:50]:
        assert set(r) == {"track", "artist", "title", "genre", "year", "popularity"}
        assert isinstance(r["artist"], str) and isinstance(r["title"], str)
        assert r["genre"] in cfg.world.genres
        assert cfg.world.year_range[0] <= r["year"] <= cfg.world.year_range[1]
        assert r["popularity"] >= 0
    assert len({r["artist"] for r in rows}) == cfg.world.artists
    meta = json.loads((small_world / "public" / "world.json").read_text())
    assert meta == {"name": "small", "seed": cfg.world.seed, "tracks": cfg.world.tracks,
                    "artists": cfg.world.artists, "genres": len(cfg.world.genres),
                    "users": cfg.world.users, "config_hash": cfg.world.fingerprint(),
                    "catalog_sha256": hashlib.sha256((small_world / "public" / "tracks.json").read_bytes()).hexdigest()}
    # an artist belongs to one genre
    genre_of = {}
    for r in rows:
        assert genre_of.setdefault(r["artist"], r["genre"]) == r["genre"]


def test_hidden_truth_has_the_course_layout(small_world, cfg):
    emb = np.load(small_world / "hidden" / "embeddings.npy")
    assert emb.dtype == np.float32 and emb.shape == (cfg.world.tracks, cfg.world.embedding.dim)
    users = [json.loads(line) for line in (small_world / "hidden" / "users.json").open()]
    assert [u["user"] for u in users] == list(range(cfg.world.users))
    lo, hi = cfg.world.user_model.interests
    b_lo, b_hi = cfg.world.user_model.consume_bias
    for u in users:
        assert set(u) == {"user", "interests", "consume_bias", "consume_sharpness"}
        assert lo <= len(u["interests"]) <= hi and len(set(u["interests"])) == len(u["interests"])
        assert b_lo <= u["consume_bias"] <= b_hi
        assert 0.5 <= u["consume_sharpness"] <= 2.0


def test_first_track_cache_holds_the_ten_nearest_by_inner_product(small_world, cfg):
    w = World.from_config(cfg)
    k = cfg.world.user_model.first_track_neighbours
    for user in range(0, w.n_users, 37):
        for j, interest in enumerate(w.interests[user]):
            scores = w.embeddings @ w.embeddings[interest]
            expected = set(np.argsort(-scores, kind="stable")[:k].tolist())
            assert set(w.nearest[user, j].tolist()) == expected


def test_same_genre_and_artist_are_closer_than_strangers(small_world, cfg):
    """The structure the calibration relies on: artist > genre > rest."""
    w = World.from_config(cfg)
    e = w.embeddings.astype(np.float64)
    rng = np.random.default_rng(0)
    i, j = rng.integers(w.n_tracks, size=(2, 20000))
    dots = np.einsum("ij,ij->i", e[i], e[j])
    same_artist = w.track_artist[i] == w.track_artist[j]
    same_genre = (w.track_genre[i] == w.track_genre[j]) & ~same_artist
    other = w.track_genre[i] != w.track_genre[j]
    assert dots[same_artist & (i != j)].mean() > dots[same_genre].mean() > dots[other].mean()


def test_generation_is_idempotent_and_detects_a_changed_config(tmp_path, cfg):
    wcfg = dataclasses.replace(_tiny(cfg), dir=tmp_path / "w")
    assert write(wcfg) is True
    stamp = (tmp_path / "w" / "hidden" / "embeddings.npy").stat().st_mtime_ns
    assert write(wcfg) is False
    assert (tmp_path / "w" / "hidden" / "embeddings.npy").stat().st_mtime_ns == stamp
    changed = dataclasses.replace(wcfg, seed=wcfg.seed + 1)
    assert not is_current(changed)
    with pytest.raises(WorldError, match="different config"):
        World.load(wcfg.dir, expect_hash=changed.fingerprint())
    assert write(changed) is True and is_current(changed)
    assert not list(tmp_path.glob(".w-*")), "no temporary directories left behind"


def test_missing_files_name_the_file_and_the_fix(tmp_path, cfg):
    wcfg = dataclasses.replace(_tiny(cfg), dir=tmp_path / "w")
    write(wcfg)
    (tmp_path / "w" / "hidden" / "users.json").unlink()
    with pytest.raises(WorldError, match=r"hidden/users.json.*python -m sim.world --config"):
        World.load(wcfg.dir)
    with pytest.raises(WorldError, match="missing"):
        World.load(tmp_path / "nowhere")


def test_a_truncated_or_edited_catalog_is_not_current(tmp_path, cfg):
    wcfg = dataclasses.replace(_tiny(cfg), dir=tmp_path / "w")
    write(wcfg)
    catalog = tmp_path / "w" / "public" / "tracks.json"
    whole = catalog.read_bytes()
    catalog.write_bytes(whole[: len(whole) // 2])  # cut mid-line, as a full disk or a bad copy leaves it
    assert not is_current(wcfg)
    assert write(wcfg) is True and catalog.read_bytes() == whole and is_current(wcfg)
    catalog.write_bytes(whole.replace(b'"track": 0,', b'"track": 00,', 1))
    assert not is_current(wcfg)
