"""The world generator: determinism, the contract's file layout, the first-track cache."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter

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


def _artist_tag_share(rows: list[dict]) -> float:
    """The share of tracks that carry their artist's most common genre tag."""
    tags: dict[str, Counter] = {}
    for r in rows:
        tags.setdefault(r["artist"], Counter())[r["genre"]] += 1
    return sum(c.most_common(1)[0][1] for c in tags.values()) / len(rows)


def test_genre_tags_are_clean_in_the_genre_world_and_noisy_in_a_scene_world(cfg):
    genre_world = dataclasses.replace(load_config("sim/config/genre.yml").world, tracks=300, artists=30, users=50)
    assert _artist_tag_share(generate(genre_world)["catalog"]) == 1.0   # an artist has one genre
    scene_world = dataclasses.replace(cfg.world, tracks=6000, artists=240, users=50)
    share = _artist_tag_share(generate(scene_world)["catalog"])
    wrong = cfg.world.scenes.mislabelled
    assert 1 - wrong - 0.03 < share < 1 - wrong + 0.03 + wrong / len(cfg.world.genres)


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


def test_taste_follows_artist_then_hidden_scene_and_the_genre_tag_only_weakly(cfg):
    """The structure the calibration relies on: same artist > same (hidden) scene >
    same published genre, which is barely above strangers; in the genre world the
    published genre is the strong signal."""
    w = generate(dataclasses.replace(cfg.world, tracks=6000, artists=240, users=50))
    e = w["embeddings"].astype(np.float64)
    artist, scene = w["track_artist"], w["track_scene"]
    genre = np.array([cfg.world.genres.index(r["genre"]) for r in w["catalog"]])
    rng = np.random.default_rng(0)
    i, j = rng.integers(len(e), size=(2, 200000))
    dots = np.einsum("ij,ij->i", e[i], e[j])
    same_artist = (artist[i] == artist[j]) & (i != j)
    same_scene = (scene[i] == scene[j]) & (artist[i] != artist[j])
    same_genre = (genre[i] == genre[j]) & (scene[i] != scene[j])
    other = (genre[i] != genre[j]) & (scene[i] != scene[j])
    assert dots[same_artist].mean() > dots[same_scene].mean() > 3 * dots[same_genre].mean()
    assert dots[same_genre].mean() > dots[other].mean()
    # the genre world (sim/config/genre.yml): the published genre carries taste
    gw = dataclasses.replace(load_config("sim/config/genre.yml").world, tracks=3000, artists=120, users=50)
    assert gw.scenes is None
    g = generate(gw)
    e, artist = g["embeddings"].astype(np.float64), g["track_artist"]
    genre = np.array([gw.genres.index(r["genre"]) for r in g["catalog"]])
    i, j = rng.integers(len(e), size=(2, 50000))
    dots = np.einsum("ij,ij->i", e[i], e[j])
    same_genre = (genre[i] == genre[j]) & (artist[i] != artist[j])
    assert dots[same_genre].mean() > 3 * dots[genre[i] != genre[j]].mean() + 3.0


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


def test_the_genre_world_is_still_reachable_by_name_and_unchanged(cfg):
    """sim/config/genre.yml is the default world before issue 8: the same generator path,
    so its content (and its config hash, apart from the name and folder) is what it was."""
    genre = load_config("sim/config/genre.yml").world
    assert genre.scenes is None and genre.name == "genre" and genre.tracks == 50000
    default = load_config("sim/config/env.yml").world
    assert default.scenes is not None and default.scenes.count > 5 * len(default.genres)
    tiny = dataclasses.replace(genre, tracks=300, artists=30, users=50)
    w = generate(tiny)
    assert w["track_scene"] is None
    # a fixed fingerprint: the genre world's hash did not move when scene worlds arrived
    assert dataclasses.replace(genre, name="default").fingerprint() == "6419ee96e27ae565"   # main before issue 8


def test_scene_config_errors_name_the_key(tmp_path):
    import yaml
    from sim.config import ConfigError, resolve
    base = yaml.safe_load(resolve("sim/config/small.yml").read_text())
    for key, value, words in [("count", 1000, "world.scenes.count"),
                              ("genres_per_scene", 21, "world.scenes.genres_per_scene"),
                              ("primary_share", 1.5, "world.scenes.primary_share")]:
        bad = json.loads(json.dumps(base))
        bad["world"]["scenes"][key] = value
        path = tmp_path / "bad.yml"
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
            load_config(path)
    bad = json.loads(json.dumps(base))
    del bad["world"]["embedding"]["scene"]
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"world\.embedding\.scene"):
        load_config(path)
