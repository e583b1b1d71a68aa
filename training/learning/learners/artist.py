"""The artist learner: which artists belong with the anchor's, read from listens calibrated by
their listener, with an exploration table of the pairs the logs have not settled yet.

Why artists: SessionAware moves on artist by artist, and what lists must learn is which
artists belong with the anchor's. Why calibrated: a listener's own bias moves every time they
give (a long listen from a listener who likes everything says little), so each time is read
against the same listener's other times. In logit space a listen is roughly (the pair's
affinity) - (the listener's threshold); a two-way fixed-effects fit (listener + artist pair,
alternating means, each pair's effect shrunk toward 0 by `shrink` pseudo-observations)
separates the two.

From a window of logs and the public catalog:
1. Observations: each artist a session tried for the first time after its anchor's artist:
   (user, anchor artist, tried artist, logit of the listened time).
2. Pair effects by the fixed-effects fit above.
3. Scores of every artist pair: co-citation (the cosine of two artists' rows of pair
   effects: artists liked and disliked beside the same others are of one scene; it places
   pairs never tried together) + `direct` x the pair's own effect + `same_tag` for the
   anchor's public tag.
4. Lists, in the one layout (`training.learning.layout`): for each track, its artist's most
   popular tracks, then `per_artist` most popular tracks of each artist by score.
5. The exploration table (`formats.learned` `explore.npz`): per artist, the `table_m`
   best-scored artists never tried with it (of its tag, with `table_same_tag`), weighted by
   their score above the first one left out.
6. The exploration shares per listener level, priced from the newest day's log
   (`training.learning.exploration`), as the policy parameter `explore_levels`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from formats.learned import levels_text
from training.learning.exploration import Pricing, level_shares, new_artist_steps
from training.learning.layout import Layout, lay_out
from training.learning.learners.base import Learned, Learner
from training.learning.window import Window


@dataclass
class ArtistSettings(Layout):
    shrink: float = 1.0            # pseudo-observations at 0 for a pair's effect
    iters: int = 10                # rounds of the alternating fit
    direct: float = 0.1            # weight of the pair's own effect beside the co-citation
    same_tag: float = 0.05         # bonus for the anchor artist's public tag
    per_artist: int = 2            # tracks of each ranked artist among the candidates
    table_m: int = 16              # candidates per artist in the exploration table
    table_same_tag: bool = True    # exploration candidates of the anchor artist's tag only
    pricing: dict = field(default_factory=dict)   # training.learning.exploration.Pricing's fields


def logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.005, 0.995)
    return np.log(x / (1 - x))


def artist_tags(artist: np.ndarray, genre: np.ndarray, n_artists: int) -> np.ndarray:
    """Each artist's public tag: the tag most of its tracks carry."""
    counts = np.zeros((n_artists, int(genre.max()) + 1), dtype=np.int64)
    np.add.at(counts, (artist, genre), 1)
    return counts.argmax(axis=1)


def observations(sessions: pd.DataFrame, artist: np.ndarray) -> pd.DataFrame:
    """One row per artist tried for the first time after the session's anchor artist:
    user `u`, anchor artist `a`, tried artist `c`, logit of the time `y`."""
    s = sessions.sort_values(["session_id", "position"], kind="stable")
    art = artist[s["track"].to_numpy()]
    sid = s["session_id"].to_numpy()
    first = np.flatnonzero(s["position"].to_numpy() == 0)
    anchor = art[first][np.searchsorted(sid[first], sid)]
    k = pd.DataFrame({"s": sid, "a": art}).groupby(["s", "a"], sort=False).cumcount().to_numpy()
    m = (s["position"].to_numpy() > 0) & (k == 0) & (art != anchor)
    return pd.DataFrame({"u": s["user"].to_numpy()[m], "a": anchor[m], "c": art[m],
                         "y": logit(s["time"].to_numpy(dtype=np.float64)[m])})


def pair_effects(obs: pd.DataFrame, n_artists: int, shrink: float, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric [artists, artists] pair effects (0 where never observed) and observation counts."""
    M = np.zeros((n_artists, n_artists))
    N = np.zeros((n_artists, n_artists))
    if obs.empty:
        return M, N
    lo = np.minimum(obs["a"].to_numpy(), obs["c"].to_numpy())
    hi = np.maximum(obs["a"].to_numpy(), obs["c"].to_numpy())
    pair, pinv = np.unique(lo * n_artists + hi, return_inverse=True)
    _, uinv = np.unique(obs["u"].to_numpy(), return_inverse=True)
    y = obs["y"].to_numpy()
    y = y - y.mean()
    n_p = np.bincount(pinv, minlength=len(pair))
    n_u = np.bincount(uinv)
    th = np.zeros(len(pair))
    for _ in range(iters):
        b = np.bincount(uinv, weights=y - th[pinv]) / n_u
        th = np.bincount(pinv, weights=y - b[uinv], minlength=len(pair)) / (n_p + shrink)
    pa, pb = pair // n_artists, pair % n_artists
    M[pa, pb] = M[pb, pa] = th
    N[pa, pb] = N[pb, pa] = n_p
    return M, N


def scores(M: np.ndarray, tags: np.ndarray, direct: float, same_tag: float) -> np.ndarray:
    """Affinity of every artist pair: co-citation + `direct` x own effect + the tag bonus; -inf
    on the diagonal."""
    X = M / (np.linalg.norm(M, axis=1, keepdims=True) + 1e-9)
    S = X @ X.T + direct * M + same_tag * (tags[:, None] == tags[None, :])
    np.fill_diagonal(S, -np.inf)
    return S


def explore_table(S: np.ndarray, N: np.ndarray, tags: np.ndarray, m: int,
                  same_tag_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per artist, the `m` best-scored artists never tried with it, weighted by their score
    above the first one left out (at least a tenth of the row's best): likely mates the logs
    say nothing about yet. -1 / 0 pads where a row has fewer."""
    W = np.where(N > 0, -np.inf, S)
    if same_tag_only:
        W = np.where(tags[:, None] == tags[None, :], W, -np.inf)
    order = np.argsort(-W, axis=1, kind="stable")[:, :m + 1]
    top = np.take_along_axis(W, order, axis=1)
    finite = np.isfinite(top)
    lowest = np.where(finite, top, np.inf).min(axis=1, keepdims=True)
    floor = np.where(finite[:, -1:], top[:, -1:], lowest - 1e-3)
    w = np.where(finite[:, :m], top[:, :m] - floor, 0.0)
    w = np.maximum(w, 0.1 * w.max(axis=1, keepdims=True)) * finite[:, :m]
    cand = np.where(w > 0, order[:, :m], -1).astype(np.int32)
    return cand, np.where(cand >= 0, w, 0.0).astype(np.float32)


def candidates(S: np.ndarray, artist: np.ndarray, popularity: np.ndarray, own: int, per_artist: int,
               k: int) -> np.ndarray:
    """[tracks, P]: each track's artist's `own` + 1 most popular tracks, then `per_artist` most
    popular tracks of each artist by score, enough for a list of `k`."""
    n_art = S.shape[0]
    order = np.lexsort((np.arange(len(popularity)), -popularity))   # by popularity, ties by id
    by_artist = [order[artist[order] == a] for a in range(n_art)]
    width = max(per_artist, 1)
    ranked = np.argsort(-S, axis=1, kind="stable")[:, :k // width + 2]
    P = own + 1 + ranked.shape[1] * width
    rows = np.full((n_art, P), -1, dtype=np.int64)
    for a in range(n_art):
        row = list(by_artist[a][:own + 1])
        for b in ranked[a]:
            row.extend(by_artist[b][:width].tolist())
        rows[a, :min(P, len(row))] = row[:P]
    return rows[artist]


class ArtistLearner(Learner):
    Settings = ArtistSettings

    def learn(self, window: Window, k: int, workdir: Path) -> Learned:
        s = self.settings
        cat = window.catalog
        t0 = time.perf_counter()
        sessions = window.sessions
        t_read = time.perf_counter() - t0
        tags = artist_tags(cat.artist, cat.genre, cat.n_artists)
        obs = observations(sessions, cat.artist)
        M, N = pair_effects(obs, cat.n_artists, s.shrink, s.iters)
        S = scores(M, tags, s.direct, s.same_tag)
        pop = cat.tracks["popularity"].to_numpy(dtype=np.float64)
        lists = lay_out(candidates(S, cat.artist, pop, s.lead, s.per_artist, k), cat, k, self.layout())
        table = explore_table(S, N, tags, s.table_m, s.table_same_tag)
        t_lists = time.perf_counter() - t0 - t_read
        newest = sessions if len(window.logs) == 1 else Window(window.logs[-1:], window.world, window.seed).sessions
        shares, priced = level_shares(new_artist_steps(newest, cat.artist), Pricing(**s.pricing))
        policy = {"explore_levels": levels_text(shares)} if shares else {}
        figures = {"observations": float(len(obs)), "pairs_observed": float((N > 0).sum() // 2),
                   "table_rows": float((table[0][:, 0] >= 0).sum()), "read_seconds": t_read,
                   "learn_seconds_lists": t_lists, "price_seconds": time.perf_counter() - t0 - t_read - t_lists,
                   **priced}
        return Learned(lists, policy, figures, explore=table)
