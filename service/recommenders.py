"""The recommenders: one small class each, one method, no HTTP, no global state.

Each gets a `Context`: the user, this session's tracks and listened times (the first
track is the one the user chose; the last is the track just played), the user's recent
listens across sessions, and a random generator seeded from (service seed, user,
session position, previous track), so a session gets the same answers whichever worker
serves it. Everything that depends on the catalog's size is precomputed in `__init__`.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import mmh3
import numpy as np

from . import artifacts
from .catalog import Catalog


class Context:
    """What a recommender sees of one request. The generator is made on first use: most
    requests of the session-aware recommenders need none, and seeding one costs ~10 us.
    `rng` is a generator, an int seed, or a tuple of ints whose MurmurHash3 (of their
    `a:b:c` text) is the seed, computed only when the generator is made."""

    __slots__ = ("user", "tracks", "times", "history", "propensity", "_seed", "_rng")

    def __init__(self, user: int, tracks: Sequence[int], times: Sequence[float],
                 history: Sequence[Sequence], rng: random.Random | int | tuple[int, ...]) -> None:
        self.user = user
        self.tracks = tracks  # this session, oldest first; tracks[-1] is the previous track
        self.times = times  # listened fraction of each; times[0] = 1.0 for the user's choice
        self.history = history  # [(track, time), ...] the user's recent listens, oldest first
        # set by the recommender: the probability with which it chose the track it returns,
        # given this context (None: not known). The event log carries it, so training and
        # off-policy evaluation can correct for the policy that logged the data.
        self.propensity: float | None = None
        self._rng = rng if isinstance(rng, random.Random) else None
        self._seed = rng

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            seed = self._seed
            if isinstance(seed, tuple):
                seed = mmh3.hash128(":".join(map(str, seed)))
            self._rng = random.Random(seed)
        return self._rng

    @property
    def prev(self) -> int:
        return self.tracks[-1]


class Recommender(Protocol):
    def recommend(self, ctx: Context) -> int: ...   # and sets ctx.propensity when it knows it


class Lists:
    """Rows of a -1-padded int table as Python lists, made on access (~1 us for 50).

    Holding 50k x 50 lists as Python objects would cost ~90 MB per recommender and worker,
    and give the cyclic GC millions of objects to traverse; the numpy table costs 10 MB.
    """

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table)  # a memory map's rows read as a plain array's: no np.memmap wrapper per row
        self.lengths = (table >= 0).sum(axis=1).tolist()  # padding is at the end of each row

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> list[int]:
        return self.table[i, : self.lengths[i]].tolist()


def _rows(table: np.ndarray) -> Lists:
    return Lists(table)


def _top(catalog: Catalog, counts: np.ndarray | None, n: int) -> list[int]:
    """The `n` most played tracks in `counts`, or the catalog's `n` most popular."""
    if counts is None:
        order = catalog.popularity_order  # made once per catalog
    else:
        order = np.argsort(-counts.astype(float), kind="stable")  # ties: lower track id first, deterministic
    return order[: max(1, min(n, len(order)))].tolist()


class Random:
    """A uniformly random catalog track: the course's control."""

    def __init__(self, catalog: Catalog) -> None:
        self.n = len(catalog)

    def recommend(self, ctx: Context) -> int:
        ctx.propensity = 1.0 / self.n
        return ctx.rng.randrange(self.n)


class TopPop:
    """A random track among the `top` most played in a log, or the catalog's most popular."""

    def __init__(self, catalog: Catalog, top: int = 100, counts: np.ndarray | None = None) -> None:
        self.tracks = _top(catalog, counts, top)

    def recommend(self, ctx: Context) -> int:
        ctx.propensity = 1.0 / len(self.tracks)  # distinct tracks (argsort of the scores)
        return self.tracks[ctx.rng.randrange(len(self.tracks))]


class StickyArtist:
    """A random track by the previous track's artist."""

    def __init__(self, catalog: Catalog) -> None:
        self.artist = catalog.artist_list()
        self.by_artist = catalog.artist_track_lists

    def recommend(self, ctx: Context) -> int:
        tracks = self.by_artist[self.artist[ctx.prev]]
        ctx.propensity = 1.0 / len(tracks)
        return tracks[ctx.rng.randrange(len(tracks))]


class Indexed:
    """A random track from the user's precomputed list (collaborative models); Random if none."""

    def __init__(self, catalog: Catalog, lists: np.ndarray) -> None:
        self.lists = _rows(lists)
        self.n = len(catalog)

    def recommend(self, ctx: Context) -> int:
        recs = self.lists[ctx.user] if ctx.user < len(self.lists) else None
        if recs:
            t = recs[ctx.rng.randrange(len(recs))]
            ctx.propensity = recs.count(t) / len(recs)
            return t
        ctx.propensity = 1.0 / self.n
        return ctx.rng.randrange(self.n)


class Contextual:
    """A random track from the previous track's i2i list; Random if none (the course's control)."""

    def __init__(self, catalog: Catalog, i2i: np.ndarray) -> None:
        self.i2i = _rows(i2i)
        self.n = len(catalog)

    def recommend(self, ctx: Context) -> int:
        recs = self.i2i[ctx.prev]
        if recs:
            t = recs[ctx.rng.randrange(len(recs))]
            ctx.propensity = recs.count(t) / len(recs)
            return t
        ctx.propensity = 1.0 / self.n
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
        total = sum(weights)
        if total > 0:
            anchor = ctx.rng.choices(recent, weights=weights)[0][0]
            seen = {t for t, _ in recent}
            seen.update(ctx.tracks)
            picks: dict[int, int | None] = {}
            pick = picks[anchor] = self._first_unseen(anchor, seen)
            if pick is None:
                pick = ctx.rng.randrange(self.n)
            # P(pick) = sum over the recent listens of (weight share) x P(that anchor yields pick)
            p = 0.0
            for (a, _), w in zip(recent, weights):
                if w > 0:
                    got = picks[a] if a in picks else picks.setdefault(a, self._first_unseen(a, seen))
                    p += w / total * (1.0 if got == pick else 1.0 / self.n if got is None else 0.0)
            ctx.propensity = p
            return pick
        ctx.propensity = 1.0 / self.n
        return ctx.rng.randrange(self.n)

    def _first_unseen(self, anchor: int, seen: set[int]) -> int | None:
        for t in self.i2i[anchor]:
            if t not in seen:
                return t
        return None


class SessionAware:
    """The seed's recommender, taken further where the listener model says it pays.

    The seed (`strategy: seed`): anchor on the first track the user chose in the session
    (it stands for the session's interest; the previous track may be one the user
    disliked), walk the anchor's i2i list, never recommend a track already heard in the
    session, fall back to TopPop.

    `strategy: artists` (the default) keeps the anchor and the never-heard rule and treats
    the session as a bandit over artists, because of what the listener does: a track is
    liked for being close to the session's interest, each replay of an artist is
    discounted (x `discount`, the listener's 0.8), and a disliked track costs budget. So:
    - the anchor's artist starts with a high prior (`first_artist_prior`): the first
      track is one of the nearest to the interest;
    - an artist played this session is estimated by its worst undiscounted listen
      (`time / discount ** plays_before`), a new artist by the mean of what new artists
      got this session (`fresh_start` before any);
    - the next track is from the artist of best estimate x `discount ** plays`: the
      anchor's artist while it beats a new one after its discount, a liked artist again
      when it still does, and never more of an artist the listener skipped;
    - new artists are taken from the anchor's i2i list (of the anchor's genre only, by
      default: the public catalog's genre tag as a filter on the list; `listed_artists:
      any` takes every listed artist in list order, for lists that learned a taste the
      tags do not show), then from the anchor's
      genre by popularity (`genre_artists` of them); within an artist, tracks in the
      anchor's i2i order, then by popularity; TopPop (not by a skipped artist) when none
      is left.
    - `new_artists: session` takes new artists from the lists of every track the session
      liked (listened at least `liked_time`, the anchor included), each listed artist scored
      by the listen's time x 1 / (1 + position / `position_decay`), summed over the lists:
      one learned list names a few of the anchor's true neighbours among many others, but
      an artist that the lists of several liked tracks name is one of them far more often
      (in-process on the default world, over learned lists: +0.02 to +0.04 of the
      Random->Oracle headroom, service/README.md). `anchor` (the default) is the rule above.
    Per request the work is bounded by the session's length and one i2i list, never the
    catalog's size.
    """

    def __init__(self, catalog: Catalog, i2i: np.ndarray, top: int = 100, counts: np.ndarray | None = None,
                 strategy: str = "artists", first_artist_prior: float = 0.9, fresh_start: float = 0.7,
                 discount: float = 0.8, genre_artists: int = 300, explore: float = 0.0,
                 explore_from: str = "list", listed_artists: str = "same_genre", new_artists: str = "anchor",
                 liked_time: float = 0.5, position_decay: float = 20.0) -> None:
        if strategy not in ("artists", "seed"):
            raise ValueError("session_aware: strategy must be 'artists' or 'seed'")
        if not (isinstance(explore, (int, float)) and 0.0 <= explore < 1.0):
            raise ValueError(f"session_aware: explore must be a probability in [0, 1), got {explore!r}")
        if explore_from not in ("list", "catalog"):
            raise ValueError("session_aware: explore_from must be 'list' or 'catalog'")
        if listed_artists not in ("same_genre", "any"):
            raise ValueError("session_aware: listed_artists must be 'same_genre' or 'any'")
        if new_artists not in ("anchor", "session"):
            raise ValueError("session_aware: new_artists must be 'anchor' or 'session'")
        if not (isinstance(liked_time, (int, float)) and 0.0 <= liked_time <= 1.0):
            raise ValueError(f"session_aware: liked_time must be within [0, 1], got {liked_time!r}")
        if not (isinstance(position_decay, (int, float)) and position_decay > 0):
            raise ValueError(f"session_aware: position_decay must be > 0, got {position_decay!r}")
        self.from_session = new_artists == "session"
        self.liked_time = float(liked_time)
        self.position_decay = float(position_decay)
        # which of the anchor's listed artists a session may move on to: those of the anchor's genre
        # tag (trust the catalog), or any, in list order (trust the lists, when a model has learned
        # a taste the public tags do not show)
        self.any_listed = listed_artists == "any"
        self.strategy = strategy
        self.explore = float(explore)
        self.explore_from = explore_from
        self.n = len(catalog)
        # the lists stay where they are (a memory map shared by the worker's arms and by workers);
        # a row's artists are looked up per request (`_listed`): a private [tracks, 2k] table of
        # lists and artists cost 20 MB per instance and worker
        self.i2i = np.asarray(i2i)
        self._lengths = (self.i2i >= 0).sum(axis=1).tolist()  # padding is at the end of each row
        # what depends on the catalog only is made once per catalog and shared (read-only)
        self.artist = catalog.artist_list()
        self._artist_codes = catalog.artist
        self.genre = catalog.genre_list
        self.top = _top(catalog, counts, top)
        self._top_pos = {t: i for i, t in enumerate(self.top)}
        self.first_prior = first_artist_prior
        self.fresh_start = fresh_start
        self.discount = discount
        # discount ** k for the usual play counts, computed once (the same floats as `discount ** k`)
        self._powers = [discount ** k for k in range(64)]
        self.by_artist = catalog.artist_tracks_by_popularity  # tracks by popularity, per artist
        # equal estimates go to the artist whose first catalog track comes later: a rule of the
        # catalog, not of how artists are numbered (the codes were once numbered in that order)
        self._tie = [int(tracks[0]) for tracks in catalog.artist_tracks]
        # per genre, its artists by their most popular track, the first `genre_artists` of them
        self.genre_artists = [g[:genre_artists] for g in catalog.genre_artists_by_popularity]

    def recommend(self, ctx: Context) -> int:
        heard, skipped, pick, candidates = self._decide(ctx)
        eps = self.explore
        if eps and ctx.rng.random() < eps:
            # exploration: a uniform draw among the candidates (the anchor's unheard i2i list, or
            # the catalog), so later days see what the greedy rule hides
            t = candidates[ctx.rng.randrange(len(candidates))] if candidates else ctx.rng.randrange(self.n)
        else:
            t = pick if pick is not None else self._fallback(ctx, heard, skipped)
        ctx.propensity = self._probability(t, heard, skipped, pick, candidates)
        return t

    def probability(self, ctx: Context, track: int) -> float:
        """P(recommend(ctx) == track): the logged propensity had it served `track`. Off-policy
        evaluation replays this recommender on logged sessions through it."""
        heard, skipped, pick, candidates = self._decide(ctx)
        return self._probability(track, heard, skipped, pick, candidates)

    def _decide(self, ctx: Context) -> tuple[set[int], set[int], int | None, list[int]]:
        """(heard, skipped artists, the greedy pick or None for the TopPop fallback, exploration candidates)."""
        heard = set(ctx.tracks)
        anchor = ctx.tracks[0]
        skipped: set[int] = set()
        if self.strategy == "artists":
            pick = self._by_artists(ctx, heard, anchor, skipped)
        else:
            pick = next((t for t in self._listed(anchor)[0] if t not in heard), None)
        candidates = self._explore_candidates(anchor, heard) if self.explore else []
        return heard, skipped, pick, candidates

    def _probability(self, t: int, heard: set[int], skipped: set[int], pick: int | None,
                     candidates: list[int]) -> float:
        greedy = (1.0 if t == pick else 0.0) if pick is not None else self._fallback_share(t, heard, skipped)
        eps = self.explore
        if not eps:
            return greedy
        explored = (1.0 / len(candidates) if t in candidates else 0.0) if candidates else 1.0 / self.n
        return (1.0 - eps) * greedy + eps * explored

    def _explore_candidates(self, anchor: int, heard: set[int]) -> list[int]:
        """What exploration draws from; empty = the whole catalog."""
        if self.explore_from == "catalog":
            return []
        return [t for t in self._listed(anchor)[0] if t not in heard]

    def _fallback(self, ctx: Context, heard: set[int], skipped: set[int]) -> int:
        """TopPop from a random start: the first unheard track not by a skipped artist."""
        start = ctx.rng.randrange(len(self.top))
        fallback = self.top[start]
        for i in range(len(self.top)):
            t = self.top[(start + i) % len(self.top)]
            if t not in heard:
                if self.artist[t] not in skipped:
                    return t
                fallback = t
        return fallback

    def _fallback_share(self, t: int, heard: set[int], skipped: set[int]) -> float:
        """P(`_fallback` returns t): the share of random starts whose walk ends at t."""
        p = self._top_pos.get(t)
        if p is None:
            return 0.0
        top, n = self.top, len(self.top)
        ok = [x not in heard and self.artist[x] not in skipped for x in top]
        if any(ok):  # the first eligible at or after the start: starts after the previous eligible
            if not ok[p]:
                return 0.0
            d = 1
            while not ok[(p - d) % n]:
                d += 1
            return d / n
        unheard = [x not in heard for x in top]
        if any(unheard):  # the last unheard one walked: starts up to the next unheard
            if not unheard[p]:
                return 0.0
            d = 1
            while not unheard[(p + d) % n]:
                d += 1
            return d / n
        return 1.0 / n

    def _by_artists(self, ctx: Context, heard: set[int], anchor: int, skipped: set[int]) -> int | None:
        artist, powers, tracks, times, tie = self.artist, self._powers, ctx.tracks, ctx.times, self._tie
        n_powers = len(powers)
        plays: dict[int, int] = {artist[anchor]: 1}
        raw: dict[int, float] = {}
        fresh: list[float] = []
        # the first track's time (1.0) is the user's choice, not a rating: ratings from the second
        for i in range(1, len(tracks)):
            a = artist[tracks[i]]
            k = plays.get(a, 0)
            r = times[i] / (powers[k] if k < n_powers else self.discount ** k)
            if k == 0:
                raw[a] = r
                fresh.append(r)
            elif r < raw.get(a, r + 1.0):
                raw[a] = r
            plays[a] = k + 1
        raw.setdefault(artist[anchor], self.first_prior)
        ranked = []
        for a, r in raw.items():
            if r > 0:
                k = plays[a]
                ranked.append((r * (powers[k] if k < n_powers else self.discount ** k), tie[a], a))
            else:
                skipped.add(a)
        ranked.sort(reverse=True)
        listed = self._listed(anchor)
        fresh_prior = sum(fresh) / len(fresh) if fresh else self.fresh_start
        for est, _, a in ranked:  # an artist estimated at 0 (skipped) is never replayed
            if fresh_prior > est:
                break
            t = self._unheard(a, heard, listed)
            if t is not None:
                return t
        a = (self._new_artist_of_session(ctx, plays, listed) if self.from_session
             else self._new_artist(anchor, plays, listed))
        if a is not None:
            return self._unheard(a, heard, listed)
        for _, _, a in ranked:  # no new artist left: the best played one that has tracks left
            t = self._unheard(a, heard, listed)
            if t is not None:
                return t
        return None

    def _listed(self, anchor: int) -> tuple[list[int], list[int]]:
        """The anchor's i2i list and its tracks' artists."""
        row = self.i2i[anchor, :self._lengths[anchor]]
        # a gather from the compact int32 codes (200 KB, cache-resident), not 50 lookups into the
        # list of Python ints (their objects scattered over MBs): ~0.5 us more than a private
        # table of the lists' artists, which cost 20 MB per instance
        return row.tolist(), self._artist_codes.take(row).tolist()

    def _new_artist(self, anchor: int, plays: dict[int, int], listed: tuple[list[int], list[int]]) -> int | None:
        g = self.genre[anchor]
        genre = self.genre
        any_listed = self.any_listed
        for t, a in zip(*listed):
            if a not in plays and (any_listed or genre[t] == g):
                return a
        return self._genre_artist(g, plays)

    def _new_artist_of_session(self, ctx: Context, plays: dict[int, int],
                               listed: tuple[list[int], list[int]]) -> int | None:
        """`new_artists: session`: the new artist the lists of the session's liked tracks name most."""
        anchor, genre = ctx.tracks[0], self.genre
        g, any_listed, decay, tie = genre[anchor], self.any_listed, self.position_decay, self._tie
        scores: dict[int, float] = {}
        liked = [(anchor, 1.0)] + [(t, x) for t, x in zip(ctx.tracks[1:], ctx.times[1:]) if x >= self.liked_time]
        seen_tracks: set[int] = set()
        for track, weight in liked:
            if track in seen_tracks:
                continue
            seen_tracks.add(track)
            tracks, artists = listed if track == anchor else self._listed(track)
            counted: set[int] = set()
            for pos, (t, a) in enumerate(zip(tracks, artists)):
                if a in plays or a in counted or not (any_listed or genre[t] == g):
                    continue
                counted.add(a)
                scores[a] = scores.get(a, 0.0) + weight / (1.0 + pos / decay)
        if scores:
            return max(scores, key=lambda a: (scores[a], tie[a]))
        return self._genre_artist(g, plays)

    def _genre_artist(self, g: int, plays: dict[int, int]) -> int | None:
        """When the lists name no new artist: the genre's most popular one not played yet."""
        return next((a for a in self.genre_artists[g] if a not in plays), None)

    def _unheard(self, artist: int, heard: set[int], listed: tuple[list[int], list[int]]) -> int | None:
        tracks, artists = listed
        if artist in artists:  # list.index scans in C: most artists are not in the list at all
            i = artists.index(artist)
            while True:
                if tracks[i] not in heard:
                    return tracks[i]
                try:
                    i = artists.index(artist, i + 1)
                except ValueError:
                    break
        for t in self.by_artist[artist]:
            if t not in heard:
                return t
        return None


def _counts(spec: dict, catalog: Catalog, tables: artifacts.Tables) -> np.ndarray | None:
    return artifacts.play_counts(spec["log"], tables.root, len(catalog)) if spec.get("log") else None


# a factory gets its config entry, the catalog and the service's artifact tables (each file read once)
Factory = Callable[[dict, Catalog, artifacts.Tables], Recommender]
KINDS: dict[str, Factory] = {
    "random": lambda s, c, t: Random(c),
    "toppop": lambda s, c, t: TopPop(c, top=s.get("top", 100), counts=_counts(s, c, t)),
    "sticky_artist": lambda s, c, t: StickyArtist(c),
    "indexed": lambda s, c, t: Indexed(c, t.user_lists(s["lists"])),
    "contextual": lambda s, c, t: Contextual(c, t.i2i(s["i2i"])),
    "i2i_history": lambda s, c, t: I2IHistory(c, t.i2i(s["i2i"]), history=s.get("history", 10)),
    "session_aware": lambda s, c, t: SessionAware(
        c, t.i2i(s["i2i"]), top=s.get("top", 100), counts=_counts(s, c, t),
        **{k: s[k] for k in ("strategy", "first_artist_prior", "fresh_start", "discount", "genre_artists",
                             "explore", "explore_from", "listed_artists", "new_artists", "liked_time",
                             "position_decay") if k in s}),
}
REQUIRED = {"indexed": ("lists",), "contextual": ("i2i",), "i2i_history": ("i2i",), "session_aware": ("i2i",)}
OPTIONS = {"random": (), "toppop": ("top", "log"), "sticky_artist": (), "indexed": ("lists",),
           "contextual": ("i2i",), "i2i_history": ("i2i", "history"),
           "session_aware": ("i2i", "top", "log", "strategy", "first_artist_prior", "fresh_start",
                             "discount", "genre_artists", "explore", "explore_from", "listed_artists",
                             "new_artists", "liked_time", "position_decay")}


def build(name: str, spec: Any, catalog: Catalog, root: Path, tables: artifacts.Tables | None = None) -> Recommender:
    """A recommender from its config entry `{kind: ..., <artifacts and options>}`. Recommenders
    built with one `tables` share the artifacts they name alike (one memory map per file)."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise ValueError(f"recommender {name!r}: 'kind' must be one of {sorted(KINDS)}")
    kind = spec["kind"]
    unknown = set(spec) - {"kind", *OPTIONS[kind]}
    if unknown:
        raise ValueError(f"recommender {name!r} ({kind}): unknown options {sorted(unknown)}")
    missing = [k for k in REQUIRED.get(kind, ()) if not spec.get(k)]
    if missing:
        raise ValueError(f"recommender {name!r} ({kind}): missing {missing}")
    return KINDS[kind](spec, catalog, tables if tables is not None else artifacts.Tables(root, len(catalog)))
