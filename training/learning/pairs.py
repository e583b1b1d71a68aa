"""Training pairs from sessions, as the course builds them, and their train/val/test split.

A pair is (context track, later track of the same session, time listened). The course's
context is the session's first track (the one the user chose); the previous track is the
other option. Splits: `random` over pairs (the course), `by_user` (no user in two parts),
`by_time` (sessions ordered by start time; the last ones are the future to predict).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CONTEXTS = ("first", "previous", "session")
SPLITS = ("random", "by_user", "by_time")


class PairsError(ValueError):
    """No usable pairs, or options that make no sense."""


def _repeats_and_plays(sid: np.ndarray, track: np.ndarray,
                       artist: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per row of sessions sorted by position: is the track a repeat within its session, and
    how often its artist was played before in the session (0 without an artist table)."""
    frame = pd.DataFrame({"sid": sid, "track": track})
    repeat = frame.groupby(["sid", "track"], sort=False).cumcount().to_numpy() > 0
    if artist is None:
        return repeat, np.zeros(len(track), dtype=np.int64)
    frame["artist"] = np.asarray(artist)[track]
    return repeat, frame.groupby(["sid", "artist"], sort=False).cumcount().to_numpy()


def build_pairs(sessions: pd.DataFrame, context: str = "first",
                artist: np.ndarray | None = None, window: int = 0,
                liked_time: float = 0.5) -> pd.DataFrame:
    """One row per played track after the first: context, target, time, user, session_id,
    timestamp, and two facts about the target within its session that shape its time
    beyond taste: `repeat` (already played earlier in the session: the listener skips it)
    and `artist_plays` (how often its artist was already played: each replay is
    discounted). `artist_plays` needs the catalog's `artist` codes (else 0).

    `sessions` is `training.data.events.sessionize` output. Vectorized: the context of each row
    is looked up by the session's first row (or the previous row) without a Python loop.

    `context: session` (co-listening, item2vec-style): the first-track pairs, plus every
    track listened at least `liked_time` as the context of the other recommended tracks
    within `window` positions of it (0: the whole session). A session stays on one
    listener's interest, so two tracks both listened long are close in taste and a long
    one beside a skipped one is not: each session teaches many pairs instead of one per
    track, which is what lets a few days of logs place tracks the first track never met.
    """
    if context == "session":
        return _session_pairs(sessions, artist, window, liked_time)
    if context not in CONTEXTS:
        raise PairsError(f"unknown context {context!r}: choose one of {CONTEXTS}")
    s = sessions.sort_values(["session_id", "position"], kind="stable")
    sid = s["session_id"].to_numpy()
    pos = s["position"].to_numpy()
    track = s["track"].to_numpy()
    if context == "first":
        first_idx = np.flatnonzero(pos == 0)
        ctx_all = track[first_idx][np.searchsorted(sid[first_idx], sid)]
    else:
        ctx_all = np.concatenate([[-1], track[:-1]])
    keep = pos > 0
    repeat, plays = _repeats_and_plays(sid, track, artist)
    out = pd.DataFrame({
        "context": ctx_all[keep].astype(np.int64),
        "target": track[keep].astype(np.int64),
        "time": s["time"].to_numpy()[keep].astype(np.float32),
        "user": s["user"].to_numpy()[keep].astype(np.int64),
        "session_id": sid[keep].astype(np.int64),
        "timestamp": s["timestamp"].to_numpy()[keep].astype(np.int64),
        "repeat": repeat[keep],
        "artist_plays": plays[keep].astype(np.int64),
    })
    return out.reset_index(drop=True)


def _session_pairs(sessions: pd.DataFrame, artist: np.ndarray | None, window: int,
                   liked_time: float) -> pd.DataFrame:
    first = build_pairs(sessions, "first", artist)
    s = sessions.sort_values(["session_id", "position"], kind="stable")
    sid = s["session_id"].to_numpy()
    pos = s["position"].to_numpy()
    track = s["track"].to_numpy()
    times = s["time"].to_numpy()
    # the per-row facts of each target, as build_pairs computes them (same row order)
    repeat, plays = _repeats_and_plays(sid, track, artist)
    longest = int(np.bincount(sid).max()) if len(sid) else 0
    reach = window if window > 0 else longest
    liked = (pos > 0) & (times >= liked_time) & ~repeat
    ctx_rows, tgt_rows = [], []
    for d in range(1, reach + 1):
        for sign in (1, -1):
            i = np.arange(max(0, -sign * d), len(sid) - max(0, sign * d))
            j = i + sign * d
            ok = liked[i] & (sid[i] == sid[j]) & (pos[j] > 0)
            ctx_rows.append(i[ok])
            tgt_rows.append(j[ok])
    ci = np.concatenate(ctx_rows) if ctx_rows else np.zeros(0, dtype=np.int64)
    tj = np.concatenate(tgt_rows) if tgt_rows else np.zeros(0, dtype=np.int64)
    more = pd.DataFrame({
        "context": track[ci].astype(np.int64), "target": track[tj].astype(np.int64),
        "time": times[tj].astype(np.float32), "user": s["user"].to_numpy()[tj].astype(np.int64),
        "session_id": sid[tj].astype(np.int64), "timestamp": s["timestamp"].to_numpy()[tj].astype(np.int64),
        "repeat": repeat[tj], "artist_plays": plays[tj].astype(np.int64),
    })
    more_pos = pos[tj][(track[ci] != track[tj])]
    more = more[more["context"] != more["target"]]
    out = pd.concat([first, more], ignore_index=True)
    # in play order by the target's place in its session, never by its wall-clock timestamp: a
    # day played again logs other milliseconds, and the rows' order is the fit's batch order
    place = np.concatenate([pos[pos > 0], more_pos])
    order = np.lexsort((place, out["session_id"].to_numpy()))
    return out.iloc[order].reset_index(drop=True)


def build_duels(pairs: pd.DataFrame, first: pd.Series, artist: np.ndarray,
                min_gap: float = 0.05) -> pd.DataFrame:
    """Within-session duels: two new artists tried after the same anchor, the one listened
    longer beats the other (`context`, `winner`, `loser`, `weight` = the time gap).

    Why: a listener's time is sigmoid(sharpness x (taste - bias)) with a bias of their own
    (the course's `consume_bias`, uniform 0..10), so a long listen says as much about the
    listener as about the track: in the scene world a track listened >= 0.5 is from the
    anchor's hidden scene 19-24% of the time, one listened 0.15 above its session's mean
    31-39% (measured on loop days 2-3). Comparing two tracks within one session cancels the
    listener's bias. Only each artist's first play counts (later ones are discounted by the
    listener's replay discount, which the pair does not share), repeats and the anchor's
    own artist never. `first` maps session_id -> the session's first track; `pairs` is any
    part of a split, so duels never cross it.
    """
    cols = ["session_id", "context", "target", "time"]
    if len(pairs) == 0:
        return pd.DataFrame({"context": [], "winner": [], "loser": [], "weight": []}).astype(
            {"context": np.int64, "winner": np.int64, "loser": np.int64, "weight": np.float32})
    sid = pairs["session_id"].to_numpy()
    ctx, tgt = pairs["context"].to_numpy(), pairs["target"].to_numpy()
    anchor = first.reindex(sid).to_numpy()
    keep = ((pairs["artist_plays"].to_numpy() == 0) & ~pairs["repeat"].to_numpy() & (ctx == anchor)
            & (artist[tgt] != artist[ctx]))
    p = pairs.loc[keep, cols].drop_duplicates(["session_id", "target"])
    m = p.merge(p[["session_id", "target", "time"]], on="session_id", suffixes=("_w", "_l"))
    m = m[m["time_w"] > m["time_l"] + min_gap]
    return pd.DataFrame({"context": m["context"].to_numpy(np.int64), "winner": m["target_w"].to_numpy(np.int64),
                         "loser": m["target_l"].to_numpy(np.int64),
                         "weight": (m["time_w"] - m["time_l"]).to_numpy(np.float32)}).reset_index(drop=True)


def first_tracks(sessions: pd.DataFrame) -> pd.Series:
    """session_id -> the session's first track (the user's own choice, the anchor)."""
    s = sessions[sessions["position"] == 0]
    return pd.Series(s["track"].to_numpy(), index=s["session_id"].to_numpy())


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _cut(n: int, val: float, test: float) -> tuple[int, int]:
    n_test = int(round(n * test))
    n_val = int(round(n * val))
    return n - n_val - n_test, n - n_test


def split_pairs(pairs: pd.DataFrame, how: str = "random", val: float = 0.1, test: float = 0.1,
                seed: int = 0) -> Split:
    """Split pairs into train/val/test (course: random 80/10/10)."""
    if how not in SPLITS:
        raise PairsError(f"unknown split {how!r}: choose one of {SPLITS}")
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise PairsError(f"val={val}, test={test}: each must be in (0, 1) and sum below 1")
    if len(pairs) < 3:
        raise PairsError(f"only {len(pairs)} pairs: the log has too few sessions with more than "
                         f"one track to train on; collect more episodes")
    rng = np.random.default_rng(seed)
    if how == "random":
        order = rng.permutation(len(pairs))
        a, b = _cut(len(pairs), val, test)
        parts = order[:a], order[a:b], order[b:]
    else:
        if how == "by_user":
            groups = pairs["user"].to_numpy()
            units = rng.permutation(np.unique(groups))
        else:  # by_time: whole sessions, in order of their first pair's timestamp
            groups = pairs["session_id"].to_numpy()
            start = pairs.groupby("session_id")["timestamp"].min().sort_values(kind="stable")
            units = start.index.to_numpy()
        if len(units) < 3:
            raise PairsError(f"split {how!r} needs at least 3 {'users' if how == 'by_user' else 'sessions'}, "
                             f"the log has {len(units)}")
        a, b = _cut(len(units), val, test)
        rank = pd.Series(np.arange(len(units)), index=units)
        r = rank.loc[groups].to_numpy()
        idx = np.arange(len(pairs))
        parts = idx[r < a], idx[(r >= a) & (r < b)], idx[r >= b]
    train, v, t = (pairs.iloc[np.sort(p)].reset_index(drop=True) for p in parts)
    if len(train) == 0 or len(v) == 0 or len(t) == 0:
        raise PairsError(f"split {how!r} left an empty part ({len(train)}/{len(v)}/{len(t)}); "
                         f"collect more episodes")
    return Split(train, v, t)


def liked_items(sessions: pd.DataFrame, liked_time: float = 0.5) -> pd.DataFrame:
    """The tracks each session liked, in play order: listened at least `liked_time` (the
    user's own first track counts, whatever its logged time), each track once per session.
    Columns session_id, position, track, time: the "basket" the standard peers learn from."""
    s = sessions.sort_values(["session_id", "position"], kind="stable")
    liked = (s["time"].to_numpy() >= liked_time) | (s["position"].to_numpy() == 0)
    out = s.loc[liked, ["session_id", "position", "track", "time"]]
    return out.drop_duplicates(["session_id", "track"]).reset_index(drop=True)
