"""The simulator's reference figures (`python -m sim.calibrate --json`), read as numbers.

A served figure means something only beside what a metadata-only rule and the ideal
recommender get on the same world and seed: `anchor_catalog` (SessionAware's anchoring
over catalog-only lists) and `anchor_ideal` (over the hidden truth's lists), with Random
and the Oracle bounding the headroom. The simulator computes them (it alone reads the
hidden truth); training only reads the JSON it prints.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: Calibration's row names before the figures carried ids (older `sim.calibrate` output).
LEGACY_NAMES = {
    "Random": "random", "StickyArtist": "sticky_artist", "TopPop-100": "toppop",
    "Oracle (upper bound)": "oracle", "SessionAnchor, catalog only (info)": "anchor_catalog",
    "SessionAnchor, ideal i2i (info)": "anchor_ideal", "Contextual, ideal i2i (info)": "contextual_ideal",
}
#: What the trend plot draws as lines, with the label it gives each.
LINES = {"anchor_catalog": "anchor, catalog-only lists", "anchor_ideal": "anchor, ideal lists"}


def headroom_share(value, floor, ceiling):
    """The share of the floor -> ceiling gap a figure captures: (value - floor) / (ceiling - floor).

    Floor and ceiling are Random's and the Oracle's on the same sessions, so the share says how
    far from perfect an arm is, whatever the day's users; works on numbers and arrays alike."""
    gap = ceiling - floor
    return (value - floor) / gap if gap else value * float("nan")


class ReferencesError(ValueError):
    """The calibration JSON lacks what the loop needs."""


@dataclass(frozen=True)
class Reference:
    id: str
    reward: float
    reward_se: float
    time_per_session: float
    headroom_share: float
    capped: float = float("nan")    # share of its sessions the simulator's step cap truncated


def load_references(path: str | Path) -> dict[str, Reference]:
    """`{id: Reference}` from a calibration JSON (figures keyed by id or by legacy name,
    or a list of figures each with an `id`). Needs at least `random` and `oracle`."""
    data = json.loads(Path(path).read_text())
    figures = data.get("figures", data)
    items = ([(f.get("id"), f) for f in figures] if isinstance(figures, list) else list(figures.items()))
    out: dict[str, Reference] = {}
    for key, f in items:
        rid = LEGACY_NAMES.get(str(key), str(key)) if not isinstance(f, dict) or "id" not in f else str(f["id"])
        try:
            out[rid] = Reference(rid, float(f["reward"]), float(f.get("reward_se", float("nan"))),
                                 float(f["time_per_session"]), float(f["headroom_share"]),
                                 float(f.get("truncated", float("nan"))))
        except (KeyError, TypeError, ValueError) as e:
            raise ReferencesError(f"{path}: figure {key!r} lacks {e}: re-run `python -m sim.calibrate --json`") from None
    for need in ("random", "oracle"):
        if need not in out:
            raise ReferencesError(f"{path}: no {need!r} figure (have {sorted(out)}); re-run `python -m sim.calibrate --json`")
    return out
