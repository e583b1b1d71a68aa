"""Exploring: SessionAware that explores beyond the lists, where tomorrow's lists can change most.

SessionAware's own exploration draws inside the anchor's list, so an artist no list names is
never tried after the anchor and no learner can find that it belongs there. This policy
draws its exploration from a candidate table training ships with the lists (`explore.npz`
of a learned version, `formats.learned`): per artist, artists the logs have not settled yet
and how often to try each.

The policy is an explicit mixture, so every pick's propensity is exact (no Monte Carlo). At a
step where the greedy rule would move to a new artist (or at every step, `explore_at: any`),
with probability e(session) it instead draws an artist from the candidates (the anchor
artist's row, or with `table_rows: session` every liked artist's rows summed in proportion
to the listen), renormalised over the artists not played yet, and plays that artist's first
unheard track (the anchor's list order, then popularity):

    P(track) = (1 - e) * P_greedy(track) + e * w(artist(track)) / sum(eligible w)

the second term only when the track is that artist's first unheard one. e is `explore`, or
with `explore_levels` ("edge:share ...", rising edges) the share of the level the session's
mean listen so far falls in: a listener who gives little to anything loses little to an
exploring pick, a generous one a lot; a learner prices the levels from the logs. Lists
shipped without a table (a version of another learner) are served greedily: no exploration.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from formats import FormatError
from formats.learned import EXPLORE, read_explore, read_levels

from ..catalog import Catalog
from .base import Context
from .options import OptionError, option
from .session_aware import SessionAware

ExploreAt = Literal["new_artist", "any"]
TableRows = Literal["anchor", "session"]
Candidates = list[tuple[int, float]]


class Exploring(SessionAware):
    """SessionAware whose exploration tries artists beyond the lists, from a candidate table
    shipped with them, every pick logged with its exact propensity."""

    @dataclass(frozen=True)
    class Options(SessionAware.Options):
        explore: float = option(0.0, within="[0, 1)", doc="the share of exploring picks at an eligible step (without "
                                                          "`explore_levels`); `explore_from` is not used")
        explore_table: str = option("", beside=EXPLORE, doc="the candidate table: an `.npz` of `cand` and `weight` "
                                                           "[artists, m] (formats.learned)")
        explore_at: ExploreAt = option("new_artist", doc="explore where the greedy rule moves to a new artist, or "
                                                         "at any step")
        table_rows: TableRows = option("anchor", doc="candidates from the anchor artist's row, or every liked "
                                                     "artist's rows")
        explore_levels: str | None = option(None, learned=True, doc="`edge:share ...`: the share by the session's "
                                                                    "mean listen so far (null: `explore` everywhere)")

    def __init__(self, catalog: Catalog, options: Options) -> None:
        # SessionAware's own exploration (uniform inside the list) stays off: this one replaces it
        super().__init__(catalog, dataclasses.replace(options, explore=0.0))
        o = options
        cand, weight = [], []
        if o.explore_table:   # none given and none beside the lists: a version without one explores nothing
            try:
                cand, weight = read_explore(o.explore_table, len(catalog.artist_tracks))
            except FormatError as e:
                raise OptionError(f"'explore_table' {o.explore_table}: {e}; train a version with an exploration "
                                  f"table (learner `artist`) or name one") from None
            cand, weight = cand.tolist(), weight.tolist()
        self.x_rows = [[(int(c), float(w)) for c, w in zip(cr, wr) if c >= 0 and w > 0]
                       for cr, wr in zip(cand, weight)]
        self.x_share = o.explore
        self.x_any = o.explore_at == "any"
        self.x_session = o.table_rows == "session"
        self.x_totals = [sum(w for _, w in row) or 1.0 for row in self.x_rows]
        try:
            self.x_levels = read_levels(o.explore_levels) if o.explore_levels else None
        except FormatError as e:
            raise OptionError(str(e)) from None

    def recommend(self, ctx: Context) -> int:
        heard, skipped, pick, eps, cands = self._plan(ctx)
        listed = self._listed(ctx.tracks[0])
        if eps and ctx.rng.random() < eps:
            u = ctx.rng.random() * sum(w for _, w in cands)
            artist, acc = cands[-1][0], 0.0
            for c, w in cands:
                acc += w
                if u < acc:
                    artist = c
                    break
            t = self._unheard(artist, heard, listed)
        else:
            t = pick if pick is not None else self._fallback(ctx, heard, skipped)
        ctx.propensity = self._mixture(t, heard, skipped, pick, eps, cands, listed)
        return t

    def probability(self, ctx: Context, track: int) -> float:
        """P(recommend(ctx) == track): the logged propensity had it served `track`."""
        heard, skipped, pick, eps, cands = self._plan(ctx)
        return self._mixture(track, heard, skipped, pick, eps, cands, self._listed(ctx.tracks[0]))

    def _plan(self, ctx: Context) -> tuple[set[int], set[int], int | None, float, Candidates]:
        """(heard, skipped artists, the greedy pick, this step's exploration share, the candidates)."""
        heard, skipped, pick, _ = self._decide(ctx)
        played = {self.artist[t] for t in ctx.tracks}
        eps, cands = 0.0, []
        if self.x_rows and (self.x_any or pick is None or self.artist[pick] not in played):
            share = self._share(ctx)
            if share:
                # a candidate with no unheard track left could not be played: it is not one
                cands = [(c, w) for c, w in self._candidates(ctx, played) if self.by_artist[c]]
                eps = share if cands else 0.0
        return heard, skipped, pick, eps, cands

    def _candidates(self, ctx: Context, played: set[int]) -> Candidates:
        """The anchor artist's row, or (`table_rows: session`) the rows of every artist the
        session liked, each row's weights summed in proportion to the listen: a candidate
        several liked artists' rows name is a mate far more often. A fixed order: the draw and
        the propensity walk it alike."""
        rows = self.x_rows
        if not self.x_session:
            a = self.artist[ctx.tracks[0]]
            return [(c, w) for c, w in rows[a] if c not in played]
        liked = [(ctx.tracks[0], 1.0)] + [(t, x) for t, x in zip(ctx.tracks[1:], ctx.times[1:])
                                          if x >= self.liked_time]
        scores: dict[int, float] = {}
        seen: set[int] = set()
        for t, x in liked:
            a = self.artist[t]
            if a in seen:
                continue
            seen.add(a)
            total = self.x_totals[a]
            for c, w in rows[a]:
                if c not in played:
                    scores[c] = scores.get(c, 0.0) + x * w / total
        return sorted(scores.items())

    def _share(self, ctx: Context) -> float:
        if self.x_levels is None:
            return self.x_share
        times = ctx.times[1:]   # the first track's 1.0 is the user's choice, not a listen
        level = sum(times) / len(times) if times else 1.0
        return share_at(self.x_levels, level)

    def _mixture(self, t: int, heard: set[int], skipped: set[int], pick: int | None, eps: float,
                 cands: Candidates, listed: tuple[list[int], list[int]]) -> float:
        greedy = (1.0 if t == pick else 0.0) if pick is not None else self._fallback_share(t, heard, skipped)
        if not eps:
            return greedy
        a = self.artist[t]
        explored = 0.0
        for c, w in cands:
            if c == a:
                if self._unheard(c, heard, listed) == t:
                    explored = w / sum(x for _, x in cands)
                break
        return (1.0 - eps) * greedy + eps * explored


def share_at(pairs: list[tuple[float, float]], level: float) -> float:
    """The share of the first level whose edge is at or above `level` (the last beyond them)."""
    for edge, share in pairs:
        if level <= edge:
            return share
    return pairs[-1][1]
