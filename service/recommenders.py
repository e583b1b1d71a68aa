"""The recommenders: one small class each, one method, no HTTP, no global state.

Each gets a `Context`: the user, this session's tracks and listened times (the first
track is the one the user chose; the last is the track just played), the user's recent
listens across sessions, and a random generator seeded from (service seed, user,
session position, previous track), so a session gets the same answers whichever worker
serves it. Everything that depends on the catalog's size is precomputed in `__init__`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from . import artifacts
from .catalog import Catalog


@dataclass(slots=True)
class Context:
    user: int
    tracks: list[int]  # this session, oldest first; tracks[-1] is the previous track
    times: list[float]  # listened fraction of each, times[0] = 1.0 for the user's choice
    history: list[list]  # [[track, time], ...] the user's recent listens, oldest first
    rng: random.Random

    @property
    def prev(self) -> int:
        return self.tracks[-1]


class Recommender(Protocol):
    def recommend(self, ctx: Context) -> int: ...


def _rows(table: np.ndarray) -> list[list[int]]:
    """Dense -1-padded table → Python lists: iterating them per request beats numpy."""
    return [[t for t in row if t >= 0] for row in table.tolist()]


def _top(scores: np.ndarray, n: int) -> list[int]:
    order = np.argsort(-scores, kind="stable")  # ties: lower track id first, deterministic
    return order[: max(1, min(n, len(order)))].tolist()


class Random:
    """A uniformly random catalog track: the course's control."""

    def __init__(self, catalog: Catalog) -> None:
        self.n = len(catalog)

    def recommend(self, ctx: Context) -> int:
        return ctx.rng.randrange(self.n)


class TopPop:
    """A random track among the `top` most played in a log, or the catalog's most popular."""

    def __init__(self, catalog: Catalog, top: int = 100, counts: np.ndarray | None = None) -> None:
        self.tracks = _top(catalog.popularity if counts is None else counts.astype(float), top)

    def recommend(self, ctx: Context) -> int:
        return self.tracks[ctx.rng.randrange(len(self.tracks))]


class StickyArtist:
    """A random track by the previous track's artist."""

    def __init__(self, catalog: Catalog) -> None:
        self.artist = catalog.artist_list()
        self.by_artist = [a.tolist() for a in catalog.artist_tracks]

    def recommend(self, ctx: Context) -> int:
        tracks = self.by_artist[self.artist[ctx.prev]]
        return tracks[ctx.rng.randrange(len(tracks))]


class Indexed:
    """A random track from the user's precomputed list (collaborative models); Random if none."""

    def __init__(self, catalog: Catalog, lists: np.ndarray) -> None:
        self.lists = _rows(lists)
        self.n = len(catalog)

    def recommend(self, ctx: Context) -> int:
        recs = self.lists[ctx.user] if ctx.user < len(self.lists) else None
        if recs:
            return recs[ctx.rng.randrange(len(recs))]
        return ctx.rng.randrange(self.n)


class Contextual:
    """A random track from the previous track's i2i list; Random if none (the course's control)."""

    def __init__(self, catalog: Catalog, i2i: np.ndarray) -> None:
        self.i2i = _rows(i2i)
        self.n = len(catalog)

    def recommend(self, ctx: Context) -> int:
        recs = self.i2i[ctx.prev]
        if recs:
            return recs[ctx.rng.randrange(len(recs))]
        return ctx.rng.randrange(self.n)


class I2IHistory:
    """The 2026 course's: an anchor drawn among the user's last `history` listens weighted by
    listened time, then the first track of its i2i list the user has not heard recently."""

    def __init__(self, catalog: Catalog, i2i: np.ndarray, history: int = 10) -> None:
        self.i2i = _rows(i2i)
        self.n = len(catalog)
        self.history = history

    def recommend(self, ctx: Context) -> int:
        recent = ctx.history[-self.history:]
        weights = [t for _, t in recent]
        if sum(weights) > 0:
            anchor = ctx.rng.choices(recent, weights=weights)[0][0]
            seen = {t for t, _ in recent}
            seen.update(ctx.tracks)
            for t in self.i2i[anchor]:
                if t not in seen:
                    return t
        return ctx.rng.randrange(self.n)


class SessionAware:
    """The seed's recommender, taken further where the listener model says it pays.

    The seed: anchor on the first track the user chose in the session (it stands for
    the session's interest; the previous track may be one the user disliked), never
    recommend a track already heard in the session, fall back to TopPop.

    Beyond the seed (each an option, defaults on):
    - `like_threshold`: a later track listened at least this much is "liked"; when its
      own list is exhausted, the anchor's is followed by the lists of liked tracks (best
      first), and with `anchor: liked` the most recent liked track becomes the anchor.
    - `max_artist_plays`: the listener discounts each replay of an artist (x0.8), so an
      artist already played this many times in the session is skipped.
    - `tired_threshold`: an artist whose last track this session was listened less than
      this is skipped: the listener is tiring of it (or never liked it).
    - `genre_fallback`: before the global TopPop, the most popular unheard tracks of the
      anchor's genre (public catalog).
    Set `max_artist_plays: null`, `tired_threshold: 0`, `like_threshold: null`,
    `genre_fallback: false` for the seed's exact behaviour.
    """

    def __init__(self, catalog: Catalog, i2i: np.ndarray, top: int = 100, counts: np.ndarray | None = None,
                 anchor: str = "first", like_threshold: float | None = 0.8,
                 max_artist_plays: int | None = 2, tired_threshold: float = 0.3,
                 genre_fallback: bool = True) -> None:
        if anchor not in ("first", "liked"):
            raise ValueError("session_aware: anchor must be 'first' or 'liked'")
        self.i2i = _rows(i2i)
        self.artist = catalog.artist_list()
        self.genre = catalog.genre.tolist()
        scores = catalog.popularity if counts is None else counts.astype(float)
        self.top = _top(scores, top)
        order = np.argsort(-scores, kind="stable")
        genre_of = catalog.genre[order]
        self.genre_top = [order[genre_of == g][:top].tolist() for g in range(len(catalog.genre_names))]
        self.anchor_mode = anchor
        self.like = like_threshold
        self.max_plays = max_artist_plays
        self.tired = tired_threshold
        self.genre_fallback = genre_fallback

    def recommend(self, ctx: Context) -> int:
        tracks, times = ctx.tracks, ctx.times
        heard = set(tracks)
        plays: dict[int, int] = {}
        last_time: dict[int, float] = {}
        for t, x in zip(tracks, times):
            a = self.artist[t]
            plays[a] = plays.get(a, 0) + 1
            last_time[a] = x

        def ok(t: int) -> bool:
            if t in heard:
                return False
            a = self.artist[t]
            n = plays.get(a, 0)
            if n and (self.max_plays is not None and n >= self.max_plays or last_time[a] < self.tired):
                return False
            return True

        anchors = [tracks[0]]
        if self.like is not None:
            liked = sorted(((x, i) for i, x in enumerate(times) if i and x >= self.like), reverse=True)
            anchors += [tracks[i] for _, i in liked]
            if self.anchor_mode == "liked" and liked:
                latest = tracks[max(i for _, i in liked)]
                anchors.remove(latest)
                anchors.insert(0, latest)
        for anchor in anchors:
            for t in self.i2i[anchor]:
                if ok(t):
                    return t
        if self.genre_fallback:
            for t in self.genre_top[self.genre[anchors[0]]]:
                if ok(t):
                    return t
        start = ctx.rng.randrange(len(self.top))
        for i in range(len(self.top)):
            t = self.top[(start + i) % len(self.top)]
            if t not in heard:
                return t
        return self.top[start]


def _counts(spec: dict, catalog: Catalog, root: Path) -> np.ndarray | None:
    return artifacts.play_counts(spec["log"], root, len(catalog)) if spec.get("log") else None


Factory = Callable[[dict, Catalog, Path], Recommender]
KINDS: dict[str, Factory] = {
    "random": lambda s, c, r: Random(c),
    "toppop": lambda s, c, r: TopPop(c, top=s.get("top", 100), counts=_counts(s, c, r)),
    "sticky_artist": lambda s, c, r: StickyArtist(c),
    "indexed": lambda s, c, r: Indexed(c, artifacts.load_user_lists(s["lists"], r, len(c))),
    "contextual": lambda s, c, r: Contextual(c, artifacts.load_i2i(s["i2i"], r, len(c))),
    "i2i_history": lambda s, c, r: I2IHistory(c, artifacts.load_i2i(s["i2i"], r, len(c)),
                                              history=s.get("history", 10)),
    "session_aware": lambda s, c, r: SessionAware(
        c, artifacts.load_i2i(s["i2i"], r, len(c)), top=s.get("top", 100), counts=_counts(s, c, r),
        **{k: s[k] for k in ("anchor", "like_threshold", "max_artist_plays", "tired_threshold",
                             "genre_fallback") if k in s}),
}
REQUIRED = {"indexed": ("lists",), "contextual": ("i2i",), "i2i_history": ("i2i",), "session_aware": ("i2i",)}
OPTIONS = {"random": (), "toppop": ("top", "log"), "sticky_artist": (), "indexed": ("lists",),
           "contextual": ("i2i",), "i2i_history": ("i2i", "history"),
           "session_aware": ("i2i", "top", "log", "anchor", "like_threshold", "max_artist_plays",
                             "tired_threshold", "genre_fallback")}


def build(name: str, spec: Any, catalog: Catalog, root: Path) -> Recommender:
    """A recommender from its config entry `{kind: ..., <artifacts and options>}`."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise ValueError(f"recommender {name!r}: 'kind' must be one of {sorted(KINDS)}")
    kind = spec["kind"]
    unknown = set(spec) - {"kind", *OPTIONS[kind]}
    if unknown:
        raise ValueError(f"recommender {name!r} ({kind}): unknown options {sorted(unknown)}")
    missing = [k for k in REQUIRED.get(kind, ()) if not spec.get(k)]
    if missing:
        raise ValueError(f"recommender {name!r} ({kind}): missing {missing}")
    return KINDS[kind](spec, catalog, root)
