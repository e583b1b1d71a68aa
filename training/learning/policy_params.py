"""SessionAware's constants estimated from the service's own event log, never from the
simulator: `discount`, `first_artist_prior` and `fresh_start`, each with the count it rests on.

The rule (service/recommenders/session_aware.py) replays the played artist of best estimate
while that estimate (the time its next track should get) is at least what a new artist is
worth, and otherwise tries a new artist. So:

- `discount`: within a session the listener and the interest are fixed, so two successive
  plays of one artist differ by the discount and by the two tracks' own appeal. A listener at
  their ceiling for the artist (common) gives exactly the discount as the ratio, the rest
  scatter both ways: the median of `time(k+1) / time(k)` over successive plays of one artist
  (the first was listened, the session's first track excluded: its 1.0 is a choice, not a
  listen). The mean is pulled down by the rule replaying after long listens.
- `fresh_start` and `first_artist_prior` are what the rule compares, not mean times: an
  artist not yet heard is worth its first listen *and* the replays that listen earns. Each
  play costs budget in proportion to `1 - time`, so an arm is worth its index: the mean time
  per play of its run, played on while the next play gets at least that much (a fixed point;
  Gittins' index of the arm in the rate of time per budget spent). A new artist's run starts
  from the first listens of new artists the policy chose itself (propensity >= 0.5: not an
  exploring or random draw); the anchor's artist's from its replays at the session's first
  recommendation (no listen seen yet, so the choice selects nothing), and the prior is that
  index undiscounted, as the rule discounts it again. The new artists are those of the
  sessions where the threshold decides something: whose anchor's artist was liked at least
  as much as the threshold.

Every version carries the three (policy.json, and figures with their counts); the service
reads those SessionAware declares learnable (`option(..., learned=True)`) when its config
leaves them unset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

#: the options of SessionAware these estimate, in the order they are estimated
NAMES = ("discount", "first_artist_prior", "fresh_start")
#: fewer observations than this and an estimate is not offered to the policy
MIN_COUNT = 100
#: a greedy pick: the policy's own choice, not an exploring or random draw
GREEDY = 0.5


@dataclass(frozen=True)
class Estimate:
    """An estimated constant and how many observations it rests on (nan when none)."""

    value: float
    count: int


def plays(sessions: pd.DataFrame, artist: np.ndarray) -> pd.DataFrame:
    """The sessions' rows in play order with the track's `artist`, `k` (earlier plays of that
    artist in the session), the session's `anchor_artist` and `chosen_p` (the propensity with
    which the track was recommended: logged on the row before it)."""
    s = sessions.sort_values(["session_id", "position"], kind="stable").copy()
    s["artist"] = artist[s["track"].to_numpy()]
    s["k"] = s.groupby(["session_id", "artist"], sort=False).cumcount()
    first = s[s["position"] == 0].set_index("session_id")["artist"]
    s["anchor_artist"] = first.reindex(s["session_id"]).to_numpy()
    s["chosen_p"] = s.groupby("session_id", sort=False)["propensity"].shift(1)
    return s


def estimate_discount(s: pd.DataFrame) -> Estimate:
    """Median ratio of successive plays of one artist in a session (`plays`' rows)."""
    by = s.groupby(["session_id", "artist"], sort=False)
    prev, prev_pos = by["time"].shift(1), by["position"].shift(1)
    ok = prev.notna() & (prev > 0) & (prev_pos > 0)
    ratio = (s["time"][ok] / prev[ok]).to_numpy()
    return Estimate(float(np.median(ratio)) if len(ratio) else float("nan"), int(len(ratio)))


def run_index(first: np.ndarray, discount: float, tol: float = 1e-6) -> float:
    """The index of an arm whose plays get `first`, then `first * discount ** k`: the mean time
    per play of its run when it is played on while its next play gets at least that mean."""
    x = np.asarray(first, dtype=np.float64)
    if len(x) == 0:
        return float("nan")
    powers = discount ** np.arange(64, dtype=np.float64)
    times = x[:, None] * powers[None, :]                 # the run's plays, first one always played
    theta = float(x.mean())
    for _ in range(200):
        played = times >= theta
        played[:, 0] = True
        new = float(times[played].sum() / played.sum())
        if abs(new - theta) < tol:
            return new
        theta = new
    return theta


def new_artist_listens(s: pd.DataFrame, discount: float) -> tuple[np.ndarray, np.ndarray]:
    """(the first listens of new artists the policy chose, how much each one's session liked
    its anchor's artist at the first recommendation, undiscounted; nan: not replayed then)."""
    new = s[(s["position"] > 0) & (s["k"] == 0) & (s["artist"] != s["anchor_artist"]) & (s["chosen_p"] >= GREEDY)]
    replay = s[(s["position"] == 1) & (s["artist"] == s["anchor_artist"])].set_index("session_id")["time"]
    return new["time"].to_numpy(), (replay / discount).reindex(new["session_id"]).to_numpy()


def estimate_fresh_start(s: pd.DataFrame, discount: float) -> Estimate:
    """A new artist's index in the sessions whose anchor's artist was liked at least as much as
    that index (below it the rule moves on whatever the threshold): a fixed point, from all up."""
    if not np.isfinite(discount):
        return Estimate(float("nan"), 0)
    t, liked = new_artist_listens(s, discount)
    x, theta = t, 0.0
    for _ in range(50):
        x = t[liked >= theta]
        if not len(x):
            return Estimate(float("nan"), 0)
        new_theta = run_index(x, discount)
        if abs(new_theta - theta) < 1e-6:
            break
        theta = new_theta
    return Estimate(theta, int(len(x)))


def estimate_first_artist_prior(s: pd.DataFrame, discount: float, fresh: Estimate) -> Estimate:
    """At the first recommendation the rule compares `first_artist_prior * discount` with
    `fresh_start`. Nothing is known yet of how the session likes the anchor's artist, so the
    right comparison is the anchor artist's index (from its replays then) against a new
    artist's over every session, not only the liking ones `fresh_start` is for: the prior
    keeps that ratio to `fresh_start`, undiscounted once as the rule discounts it again."""
    anchor = s.loc[(s["position"] == 1) & (s["artist"] == s["anchor_artist"]), "time"].to_numpy()
    new, _ = new_artist_listens(s, discount) if np.isfinite(discount) else (np.array([]), None)
    count = int(min(len(anchor), len(new)))
    if not count or not np.isfinite(fresh.value):
        return Estimate(float("nan"), count)
    return Estimate(run_index(anchor, discount) / discount * fresh.value / run_index(new, discount), count)


def estimate(sessions: pd.DataFrame, artist: np.ndarray) -> dict[str, Estimate]:
    """Every constant of `NAMES` from sessions (`training.data.events.sessionize`) and the
    catalog's artist code of each track."""
    s = plays(sessions, artist)
    d = estimate_discount(s)
    fresh = estimate_fresh_start(s, d.value)
    return {"discount": d, "first_artist_prior": estimate_first_artist_prior(s, d.value, fresh),
            "fresh_start": fresh}


def policy(estimates: Mapping[str, Estimate], min_count: int = MIN_COUNT) -> dict[str, float]:
    """The estimates a policy may use: those resting on at least `min_count` observations."""
    return {k: round(e.value, 4) for k, e in estimates.items() if e.count >= min_count and np.isfinite(e.value)}


def figures(estimates: Mapping[str, Estimate]) -> dict[str, float]:
    """Each estimate and its count, as a version's figures (`policy.<name>`, `policy.<name>_n`; an
    estimate without observations has its count only: figures are plain JSON numbers)."""
    out: dict[str, float] = {}
    for k, e in estimates.items():
        if np.isfinite(e.value):
            out[f"policy.{k}"] = float(e.value)
        out[f"policy.{k}_n"] = float(e.count)
    return out


def merged(learner_policy: Mapping[str, Any], estimated: Mapping[str, float]) -> dict[str, Any]:
    """The window's estimates under a learner's own policy: what the learner set stays."""
    return {**estimated, **learner_policy}
