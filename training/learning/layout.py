"""The one list layout every learner's lists take, and the catalog's fill.

A learner ranks candidates for each track; how they become the served list is stated here
once, because a list's layout moves its served figure as much as the learner does:
- `lead`: the first `lead` places go to the anchor's own artist (the learner's ranked
  tracks of it first, then the artist's most popular): a listener stays with an artist
  the first track says they like, and SessionAware plays the anchor's artist first;
- then the learner's candidates in its order, at most `max_per_artist` per artist (the
  listener discounts each replay of an artist and SessionAware skips an artist after two
  plays: more of one artist wastes slots), never the track itself nor a track twice;
- `fill: catalog`: a list the learner leaves short (a track it never saw, or saw with few
  neighbours) goes on with the catalog's lists (`catalog_lists`: the anchor's artist's
  most popular tracks, then its public genre tag's most popular, same cap); `none` leaves
  it short (-1 pads), for SessionAware's own fallbacks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.data.catalog import Catalog

FILLS = ("catalog", "none")


@dataclass
class Layout:
    """How ranked candidates become a list (the fields every peer's settings start with)."""

    lead: int = 2                   # places for the anchor's own artist first (0: none forced)
    max_per_artist: int = 2         # at most this many tracks of one artist per list (0: no cap)
    fill: str = "catalog"           # catalog | none: what ends a list the learner left short

    def __post_init__(self) -> None:
        if not (isinstance(self.lead, int) and self.lead >= 0 and isinstance(self.max_per_artist, int)
                and self.max_per_artist >= 0):
            raise ValueError(f"lead and max_per_artist must be integers >= 0, got {self.lead!r}, "
                             f"{self.max_per_artist!r}")
        if self.max_per_artist and self.lead > self.max_per_artist:
            raise ValueError(f"lead {self.lead} is more than max_per_artist {self.max_per_artist} allows")
        if self.fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, got {self.fill!r}")

    def describe(self) -> dict:
        return {"lead": self.lead, "max_per_artist": self.max_per_artist, "fill": self.fill}


def catalog_lists(catalog: Catalog, k: int = 50, max_per_artist: int = 2) -> np.ndarray:
    """The metadata-only lists: the anchor's artist's most popular tracks, then the most
    popular tracks of its genre, at most `max_per_artist` per artist (never the track itself).

    What a recommender gets from the public catalog alone: the fill of every layout and
    the reference every learner's figure stands beside.
    """
    pop = catalog.tracks["popularity"].to_numpy(dtype=np.float64)
    order = np.lexsort((np.arange(len(pop)), -pop))                 # by popularity, ties by id
    n = catalog.size
    out = np.full((n, k), -1, dtype=np.int64)
    by_genre = {g: order[catalog.genre[order] == g] for g in range(catalog.n_genres)}
    by_artist = {a: order[catalog.artist[order] == a] for a in range(catalog.n_artists)}
    cap = max_per_artist if max_per_artist > 0 else k
    capped = {}
    for g, tracks in by_genre.items():   # the genre's tracks, at most `cap` per artist, by popularity
        seen: dict[int, int] = {}
        keep = []
        for t in tracks.tolist():
            a = int(catalog.artist[t])
            if seen.get(a, 0) < cap:
                seen[a] = seen.get(a, 0) + 1
                keep.append(t)
            if len(keep) >= k + 2 * cap:
                break
        capped[g] = keep
    for t in range(n):
        a, g = int(catalog.artist[t]), int(catalog.genre[t])
        own = [x for x in by_artist[a][:cap + 1].tolist() if x != t][:cap]
        rest = [x for x in capped[g] if x != t and catalog.artist[x] != a]
        row = (own + rest)[:k]
        out[t, :len(row)] = row
    return out


_FILLS: dict[tuple, np.ndarray] = {}


def _fill(catalog: Catalog, k: int, cap: int) -> np.ndarray:
    """`catalog_lists` once per catalog and shape in a process (several learners, one window)."""
    key = (str(catalog.path), catalog.size, k, cap)
    if key not in _FILLS:
        _FILLS.clear()
        _FILLS[key] = catalog_lists(catalog, k, cap)
    return _FILLS[key]


def lay_out(candidates: np.ndarray, catalog: Catalog, k: int, layout: Layout, block: int = 4096) -> np.ndarray:
    """Ranked candidates [tracks, P] (best first, -1 pads) -> the lists [tracks, k] (int32,
    -1 pads), laid out as the module says. Vectorised over rows, a block at a time."""
    candidates = np.asarray(candidates)
    n = catalog.size
    if candidates.ndim != 2 or candidates.shape[0] != n:
        raise ValueError(f"candidates must be [tracks={n}, P], got {candidates.shape}")
    fill = _fill(catalog, k, layout.max_per_artist) if layout.fill == "catalog" else None
    out = np.full((n, k), -1, dtype=np.int32)
    for lo in range(0, n, block):
        rows = np.arange(lo, min(n, lo + block))
        c = candidates[rows].astype(np.int64)
        if fill is not None:
            c = np.concatenate([c, fill[rows]], axis=1)
        out[rows] = _lay_out_block(c, rows, catalog.artist, k, layout)
    return out


def _lay_out_block(c: np.ndarray, anchor: np.ndarray, artist: np.ndarray, k: int, layout: Layout) -> np.ndarray:
    b, p = c.shape
    pos = np.arange(p)
    valid = (c >= 0) & (c != anchor[:, None])
    # a track twice in a row: keep its first place (a stable sort keeps equal values in place order)
    keys = np.where(valid, c, -1 - pos)
    order = np.argsort(keys, axis=1, kind="stable")
    srt = np.take_along_axis(keys, order, axis=1)
    dup_sorted = np.concatenate([np.zeros((b, 1), bool), srt[:, 1:] == srt[:, :-1]], axis=1)
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    valid &= ~dup
    # each valid candidate's place among its artist's in the row (0 for the artist's first)
    group = np.where(valid, artist[np.maximum(c, 0)], len(artist) + pos)
    order = np.argsort(group, axis=1, kind="stable")
    gs = np.take_along_axis(group, order, axis=1)
    start = np.where(np.concatenate([np.ones((b, 1), bool), gs[:, 1:] != gs[:, :-1]], axis=1), pos, 0)
    occ_sorted = pos - np.maximum.accumulate(start, axis=1)
    occ = np.empty_like(occ_sorted)
    np.put_along_axis(occ, order, occ_sorted, axis=1)
    keep = valid & ((occ < layout.max_per_artist) if layout.max_per_artist else True)
    own = keep & (group == artist[anchor][:, None]) & (occ < layout.lead)
    tier = np.where(own, 0, np.where(keep, 1, 2))
    pick = np.argsort(tier * p + pos, axis=1, kind="stable")[:, :k]
    lists = np.take_along_axis(c, pick, axis=1)
    lists[np.take_along_axis(tier, pick, axis=1) == 2] = -1
    if lists.shape[1] < k:
        lists = np.concatenate([lists, np.full((b, k - lists.shape[1]), -1, lists.dtype)], axis=1)
    return lists
