"""The price of exploring, read from the logs, and the exploration share per listener level it buys.

The exploring policy (`service.recommenders.exploring`) is a mixture: at a step where its
greedy rule moves to a new artist, a coin of probability e decides whether the greedy pick
plays or a candidate from the exploration table does. The coin decides, so the two kinds of
picks meet the same sessions and the difference of their mean listened time is a fair price
of one exploring pick. Both kinds are told apart by their logged propensity: a greedy pick is
served with at least 1 - e >= 1/2, an exploring draw with e x its weight share < 1/2.

The price differs by the listener's level (the session's mean listen so far, which the policy
sees): a listener who gives little to anything loses little to an exploring pick and still
tells scene-mates apart. So the shares go to the cheapest levels first, each at most `most`,
while the expected loss stays within `budget` of the new-artist steps' time; every level keeps
at least `floor`, so its price stays measured tomorrow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Pricing:
    """How the exploration shares are set from the newest day's log."""

    edges: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)   # levels of the session's mean listen so far
    most: float = 0.5                # the largest share of a level (a greedy pick stays >= 1/2 likely)
    floor: float = 0.02              # the least share of a level (its price stays measured)
    budget: float = 0.03             # share of the new-artist steps' time exploring may cost
    min_picks: int = 50              # exploring and greedy picks needed to price at all
    min_level_picks: int = 20        # of each kind within a level to price it alone (else: pooled)


def new_artist_steps(sessions: pd.DataFrame, artist: np.ndarray) -> pd.DataFrame:
    """Steps where a session tried an artist for the first time (not the anchor's), with the
    propensity the pick was served with (`p`, logged by the previous event), the session's
    mean listen before it (`level`) and its arm (`arm`: experiment and arm names)."""
    s = sessions.sort_values(["session_id", "position"], kind="stable")
    art = artist[s["track"].to_numpy()]
    sid = s["session_id"].to_numpy()
    pos = s["position"].to_numpy()
    first = np.flatnonzero(pos == 0)
    anchor = art[first][np.searchsorted(sid[first], sid)]
    k = pd.DataFrame({"s": sid, "a": art}).groupby(["s", "a"], sort=False).cumcount().to_numpy()
    prop = s["propensity"].astype("float64").to_numpy()
    p = np.concatenate([[np.nan], prop[:-1]])
    p[pos == 0] = np.nan
    t = s["time"].to_numpy(dtype=np.float64)
    listened = np.where(pos > 0, t, 0.0)   # the first track's time is the user's choice, not a listen
    before = pd.Series(listened).groupby(sid).cumsum().to_numpy() - listened
    level = np.where(pos > 1, before / np.maximum(pos - 1, 1), 1.0)
    arm = [";".join(f"{e}={a}" for e, a in sorted(x.items())) if isinstance(x, dict) else ""
           for x in s["experiments"]]
    m = (pos > 0) & (k == 0) & (art != anchor) & ~np.isnan(p)
    return pd.DataFrame({"arm": np.asarray(arm, dtype=object)[m], "p": p[m], "level": level[m],
                         "time": t[m]})


def exploring_arms(steps: pd.DataFrame, least: float = 0.005) -> list[str]:
    """The arms whose new-artist picks show the exploring mixture: at least `least` of them
    served below 1/2, and of the picks served below 1 most at or above 1/2 (the greedy picks
    of the mixture). Random serves all at 1/n, Contextual its picks below 1/2 or at 1, a
    greedy rule at 1."""
    out = []
    for arm, g in steps.groupby("arm", sort=True):
        low = int((g["p"] < 0.5).sum())
        mixed = int(((g["p"] >= 0.5) & (g["p"] < 1.0)).sum())
        if low >= least * len(g) and low > 0 and mixed >= low:
            out.append(arm)
    return out


def level_shares(steps: pd.DataFrame, pricing: Pricing) -> tuple[list[tuple[float, float]] | None, dict]:
    """The share per level from the exploring arms' new-artist steps, or None when the log
    has too few picks to price (the policy then keeps its configured share); and the figures."""
    steps = steps[steps["arm"].isin(exploring_arms(steps))]
    ex = (steps["p"] < 0.5).to_numpy()
    t = steps["time"].to_numpy()
    figures = {"explore_picks": float(ex.sum()), "greedy_picks": float((~ex).sum())}
    if ex.sum() < pricing.min_picks or (~ex).sum() < pricing.min_picks:
        return None, figures
    b = np.digitize(steps["level"].to_numpy(), pricing.edges[:-1], right=True)
    pooled = max(t[~ex].mean() - t[ex].mean(), 1e-6)
    n, gap, base = [], [], []
    for k in range(len(pricing.edges)):
        m = b == k
        n.append(max(int(m.sum()), 1))
        base.append(t[m & ~ex].mean() if (m & ~ex).any() else t[~ex].mean())
        priced = (m & ex).sum() >= pricing.min_level_picks and (m & ~ex).sum() >= pricing.min_level_picks
        gap.append(max(t[m & ~ex].mean() - t[m & ex].mean(), 1e-6) if priced else pooled)
    n_, gap_, base_ = np.array(n, float), np.array(gap), np.array(base)
    shares = np.full(len(n_), pricing.floor)
    allowed = pricing.budget * float((n_ * base_).sum()) - float((shares * n_ * gap_).sum())
    for k in np.argsort(gap_, kind="stable"):   # the cheapest levels first
        add = min(pricing.most - shares[k], max(allowed, 0.0) / (n_[k] * gap_[k]))
        shares[k] += add
        allowed -= add * n_[k] * gap_[k]
    figures |= {f"explore_price.level{k}": float(g) for k, g in enumerate(gap_)}
    figures |= {f"explore_share.level{k}": float(x) for k, x in enumerate(shares)}
    return [(float(e), round(float(x), 4)) for e, x in zip(pricing.edges, shares)], figures
