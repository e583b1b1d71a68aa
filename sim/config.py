"""The simulator's YAML configuration, validated once so that a bad value fails with a
message naming the key and the fix instead of a traceback deep inside a run."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
# Bump whenever sim.world's generator changes what it writes for the same config, so
# that worlds on disk made by the old code are regenerated rather than silently reused.
GENERATOR_VERSION = 3


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or holds a bad value."""


@dataclass(frozen=True)
class EmbeddingConfig:
    dim: int
    shared: float      # length of the component every track shares (sets the Random baseline)
    genre: float       # standard deviation (norm scale) of a genre's direction
    scene: float       # ... of a hidden scene's direction (scene worlds only; 0 otherwise)
    artist: float      # ... of an artist's own direction around its genre
    track: float       # ... of a track's own direction around its artist
    popularity_appeal: float   # shared component *= 1 + this * standardized log popularity


@dataclass(frozen=True)
class ScenesConfig:
    """Hidden scenes: the taste structure the public catalog does not publish. Each
    artist belongs to one scene; a scene's artists carry one of a few genre tags."""
    count: int               # number of scenes
    concentration: float     # Dirichlet concentration of scene sizes (in artists)
    genres_per_scene: int    # genre tags a scene's artists are spread over
    primary_share: float     # probability an artist carries its scene's main tag
    mislabelled: float       # fraction of tracks whose tag is any genre, drawn by genre size


@dataclass(frozen=True)
class PopularityConfig:
    artist_sigma: float   # log-normal spread of an artist's popularity
    track_sigma: float    # log-normal spread of a track around its artist
    scale: float          # median play-count prior


@dataclass(frozen=True)
class UsersConfig:
    interests: tuple[int, int]            # inclusive range of interest tracks per user
    interest_popularity_power: float      # interests drawn with P ~ popularity ** power
    consume_bias: tuple[float, float]     # uniform range
    consume_sharpness: tuple[float, float]
    first_track_neighbours: int           # the first track is drawn among this many nearest


@dataclass(frozen=True)
class WorldConfig:
    name: str
    dir: Path
    seed: int
    tracks: int
    artists: int
    users: int
    genres: tuple[str, ...]
    genre_concentration: float   # Dirichlet concentration of genre sizes (small: unequal)
    year_range: tuple[int, int]
    scenes: ScenesConfig | None   # None: the genre world (taste follows the published genre)
    embedding: EmbeddingConfig
    popularity: PopularityConfig
    user_model: UsersConfig

    def fingerprint(self) -> str:
        """A hash of everything that shapes the world's content, so that generation is
        idempotent yet a changed config regenerates (the world's directory is not part
        of it: moving a world does not change it)."""
        d = asdict(self)
        d.pop("dir")
        if d["scenes"] is None:       # the genre world keeps the hash it had before scenes
            d.pop("scenes")
            d["embedding"].pop("scene")
        d["generator_version"] = GENERATOR_VERSION
        blob = json.dumps(d, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class SessionConfig:
    budget: int
    artist_discount: float
    max_steps: int     # our addition to the course model: Gymnasium truncation


@dataclass(frozen=True)
class RemoteConfig:
    url: str
    connect_timeout: float
    read_timeout: float


@dataclass(frozen=True)
class SimConfig:
    path: Path
    world: WorldConfig
    session: SessionConfig
    remote: RemoteConfig


class _Reader:
    """Reads typed values from the nested YAML mapping, naming the dotted key on error."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path, self.data = path, data

    def _fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: `{key}` {problem}; fix it in the YAML file "
                           f"(see sim/config/env.yml for a complete example)")

    def get(self, key: str, default: Any = ...) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is ...:
                    raise self._fail(key, "is missing")
                return default
            node = node[part]
        return node

    def int(self, key: str, minimum: int = 1, default: Any = ...) -> int:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self._fail(key, f"must be an integer >= {minimum} (got {v!r})")
        return v

    def float(self, key: str, lo: float = 0.0, hi: float = float("inf"), default: Any = ...) -> float:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise self._fail(key, f"must be a number in [{lo}, {hi}] (got {v!r})")
        return float(v)

    def range(self, key: str, kind: type, lo: float = 0.0) -> tuple:
        v = self.get(key)
        ok = (isinstance(v, list) and len(v) == 2
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
              and (kind is float or all(isinstance(x, int) for x in v))
              and lo <= v[0] <= v[1])
        if not ok:
            raise self._fail(key, f"must be a pair [low, high] of {kind.__name__}s with "
                                  f"{lo} <= low <= high (got {v!r})")
        return (kind(v[0]), kind(v[1]))

    def str(self, key: str, default: Any = ...) -> str:
        v = self.get(key, default)
        if not isinstance(v, str) or not v:
            raise self._fail(key, f"must be a non-empty string (got {v!r})")
        return v


def resolve(path: str | Path) -> Path:
    """Relative paths in configs and on the command line are relative to the working
    directory when they exist there, else to the repo root (so tests may run anywhere)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p.resolve()
    return (REPO_ROOT / p).resolve()


def load_config(path: str | Path) -> SimConfig:
    """Load and validate a simulator config (``sim/config/env.yml`` or ``small.yml``)."""
    cfg_path = resolve(path)
    if not cfg_path.is_file():
        raise ConfigError(f"config file {path} not found: pass an existing YAML file, "
                          f"e.g. --config sim/config/env.yml")
    try:
        data = yaml.safe_load(cfg_path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{cfg_path} is not valid YAML ({e}); fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{cfg_path} must hold a mapping with `world`, `session` and "
                          f"`remote` sections")
    r = _Reader(cfg_path, data)
    genres = r.get("world.genres")
    if not (isinstance(genres, list) and genres and all(isinstance(g, str) and g for g in genres)
            and len(set(genres)) == len(genres)):
        raise r._fail("world.genres", "must be a non-empty list of distinct genre names")
    world_dir = Path(r.str("world.dir"))
    if not world_dir.is_absolute():   # relative to the repo root, as the service's paths are
        world_dir = REPO_ROOT / world_dir
    tracks, artists = r.int("world.tracks"), r.int("world.artists")
    if artists > tracks:
        raise r._fail("world.artists", f"must not exceed world.tracks ({tracks})")
    scenes = None
    if r.get("world.scenes", None) is not None:
        scenes = ScenesConfig(
            count=r.int("world.scenes.count"),
            concentration=r.float("world.scenes.concentration", lo=1e-6),
            genres_per_scene=r.int("world.scenes.genres_per_scene"),
            primary_share=r.float("world.scenes.primary_share", 0.0, 1.0),
            mislabelled=r.float("world.scenes.mislabelled", 0.0, 1.0),
        )
        if scenes.count > artists:
            raise r._fail("world.scenes.count", f"must not exceed world.artists ({artists}): "
                                                f"every scene has at least one artist")
        if scenes.genres_per_scene > len(genres):
            raise r._fail("world.scenes.genres_per_scene",
                          f"must not exceed the number of genres ({len(genres)})")
    elif len(genres) >= r.int("world.embedding.dim"):
        raise r._fail("world.embedding.dim", f"must exceed the number of genres ({len(genres)}): "
                                             f"each genre is its own direction, plus the shared one")
    if len(genres) > artists:
        raise r._fail("world.genres", f"must not name more genres than world.artists ({artists})")
    interests = r.range("world.users_model.interests", int, lo=1)
    neighbours = r.int("world.users_model.first_track_neighbours")
    if neighbours > tracks:
        raise r._fail("world.users_model.first_track_neighbours", f"must not exceed world.tracks ({tracks})")
    if interests[1] > tracks:
        raise r._fail("world.users_model.interests", f"must not exceed world.tracks ({tracks})")
    world = WorldConfig(
        name=r.str("world.name"),
        dir=world_dir.resolve(),
        seed=r.int("world.seed", minimum=0),
        tracks=tracks,
        artists=artists,
        users=r.int("world.users"),
        genres=tuple(genres),
        genre_concentration=r.float("world.genre_concentration", lo=1e-6),
        year_range=r.range("world.year_range", int, lo=1),
        scenes=scenes,
        embedding=EmbeddingConfig(
            dim=r.int("world.embedding.dim"),
            shared=r.float("world.embedding.shared"),
            genre=r.float("world.embedding.genre"),
            scene=r.float("world.embedding.scene") if scenes else 0.0,
            artist=r.float("world.embedding.artist"),
            track=r.float("world.embedding.track"),
            popularity_appeal=r.float("world.embedding.popularity_appeal", 0.0, 1.0),
        ),
        popularity=PopularityConfig(
            artist_sigma=r.float("world.popularity.artist_sigma"),
            track_sigma=r.float("world.popularity.track_sigma"),
            scale=r.float("world.popularity.scale", lo=1e-9),
        ),
        user_model=UsersConfig(
            interests=interests,
            interest_popularity_power=r.float("world.users_model.interest_popularity_power"),
            consume_bias=r.range("world.users_model.consume_bias", float, lo=-1e9),
            consume_sharpness=r.range("world.users_model.consume_sharpness", float, lo=1e-9),
            first_track_neighbours=neighbours,
        ),
    )
    session = SessionConfig(
        budget=r.int("session.budget"),
        artist_discount=r.float("session.artist_discount", 0.0, 1.0),
        max_steps=r.int("session.max_steps"),
    )
    remote = RemoteConfig(
        url=r.str("remote.url", "http://127.0.0.1:3000"),
        connect_timeout=r.float("remote.connect_timeout", lo=1e-3, default=2.0),
        read_timeout=r.float("remote.read_timeout", lo=1e-3, default=10.0),
    )
    return SimConfig(path=cfg_path, world=world, session=session, remote=remote)
