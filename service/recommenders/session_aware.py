"""SessionAware: the seed's recommender, taken further where the listener model says it pays.

The seed (`strategy: seed`): anchor on the first track the user chose in the session (it
stands for the session's interest; the previous track may be one the user disliked), walk
the anchor's i2i list, never recommend a track already heard in the session, fall back to
TopPop.

`strategy: artists` keeps the anchor and the never-heard rule and treats the session as a
bandit over artists, because a track is liked for being close to the session's interest,
each replay of an artist is discounted and a disliked track costs budget:
- the anchor's artist starts at `first_artist_prior`: the first track is one of the nearest
  to the interest;
- an artist played this session is estimated by its worst undiscounted listen
  (`time / discount ** plays_before`), a new artist by the mean of what new artists got this
  session (`fresh_start` before any);
- the next track is from the artist of best estimate x `discount ** plays`, and never from
  an artist the listener skipped;
- new artists come from the anchor's i2i list (`listed_artists`: of the anchor's genre tag,
  or any), or with `new_artists: session` from the lists of every track the session liked,
  each listed artist scored by the listen's time / (1 + position / `position_decay`): an
  artist several liked tracks' lists name is a true neighbour more often than one list's;
  then the anchor's genre by popularity (`genre_artists` of them); within an artist, tracks
  in the anchor's list order, then by popularity; TopPop (not by a skipped artist) last.
Per request the work is bounded by the session's length and one list per liked track, never
the catalog's size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..catalog import Catalog
from .base import Context, top_tracks
from .options import RecommenderOptions, option

Strategy = Literal["artists", "seed"]
ListedArtists = Literal["same_genre", "any"]
NewArtists = Literal["anchor", "session"]
ExploreFrom = Literal["list", "catalog"]


class SessionAware:
    """The seed's: anchor on the session's first track, never repeat a heard track, pick the
    artist the session's listens say pays best.

    The rule in full: this module's docstring."""

    @dataclass(frozen=True)
    class Options(RecommenderOptions):
        i2i: np.ndarray = option(artifact="i2i", doc="the anchor's list: row `track` of this table")
        top: int = option(100, within=">= 1", doc="the TopPop fallback's size")
        log: np.ndarray | None = option(None, artifact="log", doc="the fallback: this log's most played tracks")
        strategy: Strategy = option("artists", doc="`seed`: the anchor's list in order; `artists`: the artists' bandit")
        first_artist_prior: float = option(0.9, within=">= 0", learned=True,
                                           doc="the anchor's artist's estimate before any replay")
        fresh_start: float = option(0.7, within=">= 0", learned=True,
                                    doc="a new artist's estimate before the session has tried one")
        discount: float = option(0.8, within="(0, 1]", learned=True,
                                 doc="the listener's discount per replay of an artist")
        genre_artists: int = option(300, within=">= 0", doc="the anchor's genre's artists to try after the lists'")
        listed_artists: ListedArtists = option("same_genre", doc="new artists from a list: its anchor genre's, or any")
        new_artists: NewArtists = option("anchor", doc="new artists from the anchor's list, or all liked tracks'")
        liked_time: float = option(0.5, within="[0, 1]", doc="`new_artists: session`: a liked listen's least share")
        position_decay: float = option(20.0, within="> 0", doc="`session`: a listed artist weighs 1/(1+position/this)")
        explore: float = option(0.0, within="[0, 1)", doc="the share of uniform draws (from `explore_from`)")
        explore_from: ExploreFrom = option("list", doc="what exploration draws: the anchor's list, or any track")

    def __init__(self, catalog: Catalog, options: Options) -> None:
        o = options
        self.from_session = o.new_artists == "session"
        self.liked_time = o.liked_time
        self.position_decay = o.position_decay
        self.any_listed = o.listed_artists == "any"
        self.strategy = o.strategy
        self.explore = o.explore
        self.explore_from = o.explore_from
        self.n = len(catalog)
        # the lists stay where they are (a memory map shared by the worker's arms and by
        # workers): a private copy per instance would count again in every worker's memory
        self.i2i = np.asarray(o.i2i)
        self._lengths = (self.i2i >= 0).sum(axis=1).tolist()  # padding is at the end of each row
        # what depends on the catalog only is made once per catalog and shared (read-only)
        self.artist = catalog.artist_list()
        self._artist_codes = catalog.artist
        self.genre = catalog.genre_list
        self.top = top_tracks(catalog, o.log, o.top)
        self._top_pos = {t: i for i, t in enumerate(self.top)}
        self.first_prior = o.first_artist_prior
        self.fresh_start = o.fresh_start
        self.discount = o.discount
        # discount ** k for the usual play counts, computed once (the same floats as `discount ** k`)
        self._powers = [o.discount ** k for k in range(64)]
        self.by_artist = catalog.artist_tracks_by_popularity  # tracks by popularity, per artist
        # equal estimates go to the artist whose first catalog track comes later: a rule of the
        # catalog, not of how its artists happen to be numbered
        self._tie = [int(tracks[0]) for tracks in catalog.artist_tracks]
        # per genre, its artists by their most popular track, the first `genre_artists` of them
        self.genre_artists = [g[:o.genre_artists] for g in catalog.genre_artists_by_popularity]

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
        # gathered from the compact int32 codes per request (they stay in cache): a private table
        # of every list's artists would cost memory per instance and worker
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
