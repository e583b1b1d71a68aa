"""Reference recommenders the simulator uses to calibrate its world against the course's
results. They read only the public catalog (artist, genre, popularity), except the
``ideal`` variants, which read the hidden embeddings to bound what a learned i2i model
could reach; none of them is the service's code."""
from __future__ import annotations

import numpy as np

from sim.world import World


class _Seeded:
    def __init__(self, seed: int | np.random.SeedSequence | None = None):
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        self.rng = np.random.default_rng(seed)

    def end_session(self, user: int, last_track: int, last_time: float) -> None:
        pass


class StickyArtist(_Seeded):
    """The course's StickyArtist: a random track by the previous track's artist."""

    def __init__(self, world: World, seed=None):
        super().__init__(seed)
        order = np.argsort(world.track_artist, kind="stable")
        bounds = np.searchsorted(world.track_artist[order], np.arange(len(world.artist_names) + 1))
        self._by_artist = [order[bounds[a]:bounds[a + 1]] for a in range(len(world.artist_names))]
        self._artist = world.track_artist

    def recommend_next(self, user: int, prev_track: int, prev_time: float) -> int:
        tracks = self._by_artist[self._artist[prev_track]]
        return int(tracks[self.rng.integers(len(tracks))])


class TopPop(_Seeded):
    """The course's TopPop: a random track among the ``top`` most popular (here by the
    catalog's public popularity prior)."""

    def __init__(self, world: World, top: int = 100, seed=None):
        super().__init__(seed)
        self._top = np.argsort(-world.popularity, kind="stable")[:top]

    def recommend_next(self, user: int, prev_track: int, prev_time: float) -> int:
        return int(self._top[self.rng.integers(len(self._top))])


class _Anchored(_Seeded):
    """Shared session bookkeeping: the session's anchor (its first track), what was
    played and how often each artist was played, cleared by ``end_session``."""

    def __init__(self, world: World, seed=None, tired: int = 2):
        super().__init__(seed)
        self._artist = world.track_artist
        self._tired = tired
        self._state: dict[int, dict] = {}

    def _session(self, user: int, prev_track: int) -> dict:
        """Every call's ``prev_track`` is a new play: the session's first track on the
        first call, then the track recommended the call before."""
        s = self._state.get(user)
        if s is None:
            s = {"anchor": prev_track, "played": set(), "plays": {}}
            self._state[user] = s
        s["played"].add(prev_track)
        a = int(self._artist[prev_track])
        s["plays"][a] = s["plays"].get(a, 0) + 1
        return s

    def _pick(self, s: dict, ranked: np.ndarray) -> int | None:
        """The first track of ``ranked`` neither played nor by a tired artist."""
        played, plays, tired = s["played"], s["plays"], self._tired
        for t in ranked.tolist():
            if t not in played and plays.get(int(self._artist[t]), 0) < tired:
                return t
        return None

    def end_session(self, user: int, last_track: int, last_time: float) -> None:
        self._state.pop(user, None)


class SessionAnchorIdeal(_Anchored):
    """Upper reference for the service's SessionAware: the anchor's nearest neighbours
    by the *hidden* embeddings (a perfectly learned i2i list), never repeating a track,
    skipping tired artists. Not a fair recommender; it calibrates the headline.

    The list is long (``k=1000``) so that a session rarely walks off its end: with two
    plays per artist a 30-step session needs about 15 artists, which in a scene world
    lie several hundred tracks down the anchor's list (a 200-track list ran out and fell
    back to random tracks, understating what perfect lists reach by about 0.1 of the
    headroom)."""

    def __init__(self, world: World, seed=None, k: int = 1000, tired: int = 2):
        super().__init__(world, seed, tired)
        self._emb = world.embeddings
        self._k = k
        self._cache: dict[int, np.ndarray] = {}

    def _neighbours(self, track: int) -> np.ndarray:
        nb = self._cache.get(track)
        if nb is None:
            scores = self._emb @ self._emb[track]
            top = np.argpartition(-scores, self._k)[:self._k + 1]
            nb = top[np.argsort(-scores[top], kind="stable")]
            self._cache[track] = nb
        return nb

    def recommend_next(self, user: int, prev_track: int, prev_time: float) -> int:
        s = self._session(user, prev_track)
        t = self._pick(s, self._neighbours(s["anchor"]))
        return t if t is not None else int(self.rng.integers(len(self._emb)))


class ContextualIdeal(SessionAnchorIdeal):
    """Reference for the course's Contextual with a perfect i2i list: a random track
    among the previous track's nearest neighbours (it may repeat, as the course's does)."""

    def __init__(self, world: World, seed=None, k: int = 50):
        super().__init__(world, seed, k)

    def recommend_next(self, user: int, prev_track: int, prev_time: float) -> int:
        nb = self._neighbours(prev_track)[1:]
        return int(nb[self.rng.integers(len(nb))])


class SessionAnchorCatalog(_Anchored):
    """A session-anchored recommender from the public catalog alone: tracks of the
    anchor's artist, then of its genre (random order), never repeating, skipping tired
    artists. What SessionAware can do before it learns anything from logs."""

    def __init__(self, world: World, seed=None, tired: int = 2):
        super().__init__(world, seed, tired)
        self._genre = world.track_genre
        order = np.argsort(world.track_genre, kind="stable")
        bounds = np.searchsorted(world.track_genre[order], np.arange(len(world.genre_names) + 1))
        self._by_genre = [order[bounds[g]:bounds[g + 1]] for g in range(len(world.genre_names))]
        self._sticky = StickyArtist(world)

    def recommend_next(self, user: int, prev_track: int, prev_time: float) -> int:
        s = self._session(user, prev_track)
        anchor = s["anchor"]
        if "ranked" not in s:
            same_artist = self.rng.permutation(self._sticky._by_artist[self._artist[anchor]])
            same_genre = self.rng.permutation(self._by_genre[self._genre[anchor]])
            s["ranked"] = np.concatenate([same_artist, same_genre])
        t = self._pick(s, s["ranked"])
        return t if t is not None else int(self.rng.integers(len(self._genre)))
