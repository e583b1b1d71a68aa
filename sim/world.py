"""The world: a seeded catalog of tracks and a population of listeners, written to disk
(``python -m sim.world --config sim/config/env.yml``) and loaded back by the simulator.

Layout (docs/architecture.md): ``public/`` is the catalog everyone may read;
``hidden/`` is the truth only ``sim/`` reads: track embeddings, the users' parameters
and ``nearest.npy``, a cache of each user interest's nearest tracks (the course's
first-track rule), so that no process has to search 50,000 tracks per session.

Why the embeddings look the way they do (the default, a *scene world*): a track is
``shared + scene + genre + artist + own`` (each a random direction with a configured
scale). Scenes (``world.scenes``, e.g. 150 of them) are hidden: an artist belongs to one,
and a scene's artists carry one of a few public genre tags, some tracks mislabelled, as
real catalogs' coarse genres cut across the scenes listeners actually follow. A
listener's session is anchored on one interest track, so tracks of the same artist score
highest, then tracks of the same scene, whoever tags them how, then the rest, whose
inner product is only the shared component plus noise. The published genre is a weak
hint of the scene, so a recommender that knows only the catalog stays far below one
that has learned (from listening logs) which tracks belong together: the lists decide
the outcome. Without ``world.scenes`` the generator makes the *genre world* (the
default before issue 8, ``sim/config/genre.yml``): ``shared + genre + artist + own``
with the genre published, where the catalog alone nearly reaches the hidden truth.
Popularity is drawn apart from taste, except that a track's shared component grows a
little with its popularity (``embedding.popularity_appeal``): hits are broadly liked, just
enough that TopPop lands near Random, as in the course. Interests are drawn by popularity.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.config import ConfigError, SimConfig, WorldConfig, load_config
from sim.names import artist_names, track_titles

PUBLIC_FILES = ("public/tracks.json", "public/world.json")
HIDDEN_FILES = ("hidden/embeddings.npy", "hidden/users.json", "hidden/nearest.npy")


class WorldError(RuntimeError):
    """A world is missing, incomplete or was generated from a different config."""


def _spread(rng: np.random.Generator, total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` items over bins by weight, at least one per bin."""
    n = len(weights)
    counts = np.ones(n, dtype=np.int64)
    counts += rng.multinomial(total - n, weights / weights.sum())
    return counts


def _nearest(emb: np.ndarray, queries: np.ndarray, k: int, chunk: int = 512) -> np.ndarray:
    """Indices of the k tracks with the largest inner product with each query, best
    first (ties broken by track id so the result never depends on the BLAS build)."""
    out = np.empty((len(queries), k), dtype=np.int32)
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk] @ emb.T          # [chunk, tracks]
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)
        out[start:start + chunk] = np.take_along_axis(top, order, axis=1)
    return out


def _genre_world(cfg: WorldConfig, r_struct: np.random.Generator, r_pop: np.random.Generator,
                 r_emb: np.random.Generator) -> tuple:
    """The genre world (``sim/config/genre.yml``, the default before scenes): taste is
    ``shared + genre + artist + own`` and the genre is published, so the catalog alone
    ranks a session's best tracks almost as well as the hidden truth does."""
    n_genres = len(cfg.genres)
    # Structure: genres of unequal size, artists with unequal track counts.
    genre_w = r_struct.dirichlet(np.full(n_genres, cfg.genre_concentration))
    genre_w = np.maximum(genre_w, 1e-3)
    artist_genre = np.concatenate([np.arange(n_genres),
                                   r_struct.choice(n_genres, cfg.artists - n_genres, p=genre_w / genre_w.sum())])
    r_struct.shuffle(artist_genre)
    per_artist = _spread(r_struct, cfg.tracks, r_struct.lognormal(0.0, 0.7, cfg.artists))
    track_artist = np.repeat(np.arange(cfg.artists), per_artist)
    track_artist = track_artist[r_struct.permutation(cfg.tracks)]   # ids reveal nothing
    track_genre = artist_genre[track_artist]

    log_pop, popularity = _popularity(cfg, r_pop, track_artist)

    # Hidden embeddings: shared > genre > artist > track.
    e = cfg.embedding
    d = e.dim
    # Genres are equally distinct orthogonal directions, and the shared component is
    # orthogonal to all of them: no pair of genres is accidentally close, so which genres
    # the most popular tracks fall in does not decide whether TopPop beats Random.
    basis, _ = np.linalg.qr(r_emb.standard_normal((d, d)))
    genre_vec = basis[:, :n_genres].T * e.genre
    shared = basis[:, n_genres] * e.shared
    artist_vec = genre_vec[artist_genre] + r_emb.standard_normal((cfg.artists, d)) * (e.artist / np.sqrt(d))
    own = r_emb.standard_normal((cfg.tracks, d)) * (e.track / np.sqrt(d))
    appeal = _appeal(e.popularity_appeal, log_pop)
    embeddings = (appeal[:, None] * shared + artist_vec[track_artist] + own).astype(np.float32)
    return track_artist, track_genre, None, popularity, embeddings


def _scene_world(cfg: WorldConfig, r_struct: np.random.Generator, r_pop: np.random.Generator,
                 r_emb: np.random.Generator) -> tuple:
    """The scene world (the default): taste is ``shared + scene + genre + artist + own``
    where the scene, which carries most of it, is hidden. A scene's artists carry one of
    a few genre tags (its main one with ``primary_share``) and some tracks are
    mislabelled, so the published genre is a coarse, noisy hint of the scene and only
    what is learned from listening (which tracks the same sessions like) finds the rest
    of a session's scene."""
    sc = cfg.scenes
    n_genres = len(cfg.genres)
    genre_w = r_struct.dirichlet(np.full(n_genres, cfg.genre_concentration))
    genre_w = np.maximum(genre_w, 1e-3)
    genre_w = genre_w / genre_w.sum()
    scene_w = np.maximum(r_struct.dirichlet(np.full(sc.count, sc.concentration)), 1e-3)
    artist_scene = np.concatenate([np.arange(sc.count),
                                   r_struct.choice(sc.count, cfg.artists - sc.count, p=scene_w / scene_w.sum())])
    r_struct.shuffle(artist_scene)
    # A scene's tags: distinct genres drawn by genre size, the first its main one.
    keys = np.log(r_struct.random((sc.count, n_genres))) / genre_w    # weighted sampling w/o replacement
    scene_tags = np.argsort(-keys, axis=1)[:, :sc.genres_per_scene]
    main = r_struct.random(cfg.artists) < sc.primary_share
    slot = np.where(main, 0, 1 + r_struct.integers(0, max(sc.genres_per_scene - 1, 1), cfg.artists))
    slot = np.minimum(slot, sc.genres_per_scene - 1)
    artist_genre = scene_tags[artist_scene, slot]
    per_artist = _spread(r_struct, cfg.tracks, r_struct.lognormal(0.0, 0.7, cfg.artists))
    track_artist = np.repeat(np.arange(cfg.artists), per_artist)
    track_artist = track_artist[r_struct.permutation(cfg.tracks)]   # ids reveal nothing
    wrong = r_struct.random(cfg.tracks) < sc.mislabelled
    track_genre = np.where(wrong, r_struct.choice(n_genres, cfg.tracks, p=genre_w), artist_genre[track_artist])

    log_pop, popularity = _popularity(cfg, r_pop, track_artist)

    # Hidden embeddings. Scenes are random directions (related scenes overlap a little,
    # as real ones do), all orthogonal to the shared component so that no scene changes
    # the baseline every listener has for any track.
    e = cfg.embedding
    d = e.dim
    shared_dir = r_emb.standard_normal(d)
    shared_dir /= np.linalg.norm(shared_dir)

    def directions(n: int, scale: float) -> np.ndarray:
        v = r_emb.standard_normal((n, d)) * (scale / np.sqrt(d))
        return v - np.outer(v @ shared_dir, shared_dir)

    scene_vec = directions(sc.count, e.scene)
    genre_vec = directions(n_genres, e.genre)
    artist_vec = (scene_vec[artist_scene] + genre_vec[artist_genre]
                  + r_emb.standard_normal((cfg.artists, d)) * (e.artist / np.sqrt(d)))
    own = r_emb.standard_normal((cfg.tracks, d)) * (e.track / np.sqrt(d))
    appeal = _appeal(e.popularity_appeal, log_pop)
    embeddings = (appeal[:, None] * (shared_dir * e.shared) + artist_vec[track_artist] + own).astype(np.float32)
    return track_artist, track_genre, artist_scene[track_artist], popularity, embeddings


def _popularity(cfg: WorldConfig, r_pop: np.random.Generator, track_artist: np.ndarray) -> tuple:
    """Public popularity prior: an artist's draw times the track's own."""
    p = cfg.popularity
    artist_pop = r_pop.lognormal(0.0, p.artist_sigma, cfg.artists)
    log_pop = np.log(artist_pop[track_artist]) + r_pop.normal(0.0, p.track_sigma, cfg.tracks)
    return log_pop, np.round(p.scale * np.exp(log_pop), 3)


def _appeal(popularity_appeal: float, log_pop: np.ndarray) -> np.ndarray:
    """Popular tracks are a little more broadly appealing (a longer shared component):
    without it, playing 100 fixed tracks (with repeats) would fall well below Random."""
    z_pop = (log_pop - log_pop.mean()) / log_pop.std()
    return np.maximum(1.0 + popularity_appeal * z_pop, 0.0)


def generate(cfg: WorldConfig) -> dict:
    """Build the world in memory: returns the catalog rows, embeddings, users and the
    first-track cache. Deterministic in ``cfg`` (each part has its own random stream,
    so changing one part's size does not reshuffle the others)."""
    streams = np.random.SeedSequence(cfg.seed).spawn(6)
    r_struct, r_names, r_years, r_pop, r_emb, r_users = (np.random.default_rng(s) for s in streams)
    build = _genre_world if cfg.scenes is None else _scene_world
    track_artist, track_genre, track_scene, popularity, embeddings = build(cfg, r_struct, r_pop, r_emb)

    # Years: an artist's career starts somewhere in the range and lasts a few years.
    lo, hi = cfg.year_range
    debut = r_years.integers(lo, hi + 1, cfg.artists)
    years = np.minimum(debut[track_artist] + np.floor(r_years.exponential(4.0, cfg.tracks)).astype(int), hi)

    artists = artist_names(r_names, cfg.artists)
    titles = track_titles(r_names, cfg.tracks)

    # Users: interests drawn by popularity (without repeats), course parameters.
    u = cfg.user_model
    weight = popularity.astype(np.float64) ** u.interest_popularity_power
    cdf = np.cumsum(weight / weight.sum())
    k_lo, k_hi = u.interests
    counts = r_users.integers(k_lo, k_hi + 1, cfg.users)
    bias = r_users.uniform(*u.consume_bias, cfg.users)
    sharpness = r_users.uniform(*u.consume_sharpness, cfg.users)
    interests: list[list[int]] = []
    for k in counts:
        chosen: list[int] = []
        while len(chosen) < k:
            draws = np.searchsorted(cdf, r_users.random(2 * k), side="right")
            for t in np.minimum(draws, cfg.tracks - 1).tolist():
                if t not in chosen and len(chosen) < k:
                    chosen.append(t)
        interests.append(chosen)

    unique = np.unique(np.concatenate([np.asarray(i, dtype=np.int64) for i in interests]))
    near_unique = _nearest(embeddings, embeddings[unique], u.first_track_neighbours)
    row = {int(t): i for i, t in enumerate(unique)}
    nearest = np.full((cfg.users, k_hi, u.first_track_neighbours), -1, dtype=np.int32)
    for user, ints in enumerate(interests):
        for j, t in enumerate(ints):
            nearest[user, j] = near_unique[row[t]]

    catalog = [{"track": t, "artist": artists[track_artist[t]], "title": titles[t],
                "genre": cfg.genres[track_genre[t]], "year": int(years[t]),
                "popularity": float(popularity[t])} for t in range(cfg.tracks)]
    users = [{"user": i, "interests": interests[i], "consume_bias": round(float(bias[i]), 6),
              "consume_sharpness": round(float(sharpness[i]), 6)} for i in range(cfg.users)]
    # track_artist and track_scene (None in the genre world) are the generator's truth for
    # tests and analysis; only the catalog and the hidden/ files are written.
    return {"catalog": catalog, "embeddings": embeddings, "users": users, "nearest": nearest,
            "track_artist": track_artist, "track_scene": track_scene}


def _write_lines(path: Path, rows: list[dict]) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(", ", ": ")) + "\n")


def _digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def is_current(cfg: WorldConfig) -> bool:
    """True when the world on disk is complete, was made from this config, and its catalog is
    the one written then (a truncated or edited tracks.json is regenerated, not served)."""
    meta = cfg.dir / "public" / "world.json"
    if not all((cfg.dir / f).is_file() for f in PUBLIC_FILES + HIDDEN_FILES):
        return False
    try:
        m = json.loads(meta.read_text())
        return (m.get("config_hash") == cfg.fingerprint()
                and m.get("catalog_sha256") == _digest(cfg.dir / "public" / "tracks.json"))
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def write(cfg: WorldConfig, force: bool = False) -> bool:
    """Generate the world into ``cfg.dir`` unless an identical one is there already.
    Written to a temporary sibling directory and renamed, so a crash never leaves a
    half-written world that looks complete. Returns True when it wrote."""
    if not force and is_current(cfg):
        return False
    w = generate(cfg)
    cfg.dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.dir.name}-", dir=cfg.dir.parent))
    try:
        (tmp / "public").mkdir()
        (tmp / "hidden").mkdir()
        _write_lines(tmp / "public" / "tracks.json", w["catalog"])
        meta = {"name": cfg.name, "seed": cfg.seed, "tracks": cfg.tracks, "artists": cfg.artists,
                "genres": len(cfg.genres), "users": cfg.users, "config_hash": cfg.fingerprint(),
                "catalog_sha256": _digest(tmp / "public" / "tracks.json")}
        (tmp / "public" / "world.json").write_text(json.dumps(meta, indent=2) + "\n")
        np.save(tmp / "hidden" / "embeddings.npy", w["embeddings"])
        np.save(tmp / "hidden" / "nearest.npy", w["nearest"])
        _write_lines(tmp / "hidden" / "users.json", w["users"])
        if cfg.dir.exists():
            old = cfg.dir.with_name(f".{cfg.dir.name}-old-{os.getpid()}")
            cfg.dir.rename(old)
            tmp.rename(cfg.dir)
            shutil.rmtree(old)
        else:
            tmp.rename(cfg.dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


@dataclass
class World:
    """A world loaded for simulation: arrays indexed by track and by user."""

    dir: Path
    embeddings: np.ndarray          # float32 [tracks, dim]
    track_artist: np.ndarray        # int32 [tracks], artist index (order of first appearance)
    track_genre: np.ndarray         # int32 [tracks]
    popularity: np.ndarray          # float64 [tracks]
    titles: list[str]
    artist_names: list[str]
    genre_names: list[str]
    interests: list[list[int]]      # per user
    n_interests: np.ndarray         # int32 [users]
    consume_bias: np.ndarray        # float64 [users]
    consume_sharpness: np.ndarray   # float64 [users]
    nearest: np.ndarray             # int32 [users, max interests, neighbours], -1 padded

    @functools.cached_property
    def embeddings64(self) -> np.ndarray:
        """The embeddings in float64: both environments compute times from these, so a
        batch and a single session agree to the last bit before rounding."""
        return self.embeddings.astype(np.float64)

    @property
    def n_tracks(self) -> int:
        return len(self.embeddings)

    @property
    def n_users(self) -> int:
        return len(self.consume_bias)

    @classmethod
    def load(cls, world_dir: str | Path, expect_hash: str | None = None,
             config_hint: str = "sim/config/env.yml") -> "World":
        """Load a world; a missing file or a world made from another config raises
        WorldError saying how to (re)generate it."""
        world_dir = Path(world_dir)
        fix = f"generate it with `python -m sim.world --config {config_hint}`"
        missing = [f for f in PUBLIC_FILES + HIDDEN_FILES if not (world_dir / f).is_file()]
        if missing:
            raise WorldError(f"world at {world_dir} is missing {', '.join(missing)}: {fix}")
        meta = json.loads((world_dir / "public" / "world.json").read_text())
        if expect_hash is not None and meta.get("config_hash") != expect_hash:
            raise WorldError(f"world at {world_dir} was generated from a different config "
                             f"(hash {meta.get('config_hash')}, config says {expect_hash}): re{fix[1:]}")
        artist_index: dict[str, int] = {}
        genre_index: dict[str, int] = {}
        n = int(meta["tracks"])
        track_artist = np.empty(n, dtype=np.int32)
        track_genre = np.empty(n, dtype=np.int32)
        popularity = np.empty(n, dtype=np.float64)
        titles: list[str] = [""] * n
        with (world_dir / "public" / "tracks.json").open() as f:
            for line in f:
                row = json.loads(line)
                t = row["track"]
                track_artist[t] = artist_index.setdefault(row["artist"], len(artist_index))
                track_genre[t] = genre_index.setdefault(row["genre"], len(genre_index))
                popularity[t] = row["popularity"]
                titles[t] = row["title"]
        with (world_dir / "hidden" / "users.json").open() as f:
            users = [json.loads(line) for line in f]
        users.sort(key=lambda u: u["user"])
        embeddings = np.load(world_dir / "hidden" / "embeddings.npy")
        nearest = np.load(world_dir / "hidden" / "nearest.npy")
        if embeddings.shape[0] != n or nearest.shape[0] != len(users):
            raise WorldError(f"world at {world_dir} is inconsistent (tracks.json has {n} tracks, "
                             f"embeddings {embeddings.shape[0]}; {len(users)} users, cache "
                             f"{nearest.shape[0]}): re{fix[1:]}")
        return cls(
            dir=world_dir,
            embeddings=np.ascontiguousarray(embeddings, dtype=np.float32),
            track_artist=track_artist,
            track_genre=track_genre,
            popularity=popularity,
            titles=titles,
            artist_names=list(artist_index),
            genre_names=list(genre_index),
            interests=[u["interests"] for u in users],
            n_interests=np.array([len(u["interests"]) for u in users], dtype=np.int32),
            consume_bias=np.array([u["consume_bias"] for u in users], dtype=np.float64),
            consume_sharpness=np.array([u["consume_sharpness"] for u in users], dtype=np.float64),
            nearest=nearest,
        )

    @classmethod
    def from_config(cls, cfg: SimConfig) -> "World":
        return cls.load(cfg.world.dir, expect_hash=cfg.world.fingerprint(),
                        config_hint=_display(cfg.path))


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.world", description=(
        "Generate Botify's world (public catalog + hidden truth) from a config. "
        "Idempotent: does nothing when the world on disk matches the config."))
    parser.add_argument("--config", default="sim/config/env.yml", help="simulator YAML config")
    parser.add_argument("--force", action="store_true", help="regenerate even when up to date")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        wrote = write(cfg.world, force=args.force)
    except (ConfigError, WorldError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    w = cfg.world
    state = "generated" if wrote else "already up to date"
    print(f"world {w.name!r} {state} at {w.dir} ({w.tracks} tracks, {w.artists} artists, "
          f"{len(w.genres)} genres, {w.users} users; seed {w.seed}; hash {w.fingerprint()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
