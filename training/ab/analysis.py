"""The analysis of one A/B day, the same for every job: its design (arms, the 2x2 of policy x
lists, the headline) read against the day's log and the day's own references.

The experiment's 2x2 (control vs treatment model lists) and the loop's (champion vs
challenger lists) are one design with other arms: `analyse` gives both the effects table
(every arm against Random, the course's table), the 2x2's table and each arm's served
reward with its share of the Random -> Oracle headroom.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from training.ab.references import headroom_share
from training.ab.stats import AnalysisError
from training.ab.tables import FACTORIAL_COLUMNS, capped_shares, check_design, effects_table, factorial_table
from training.ab.users import arm_means, assign_arms, user_metrics

if TYPE_CHECKING:   # the analysis reads a played day; it never plays one
    from training.ab.day import DayLog


@dataclass(frozen=True)
class Design:
    """What a day's A/B compares: its arms (`C`, Random, the control), the 2x2 of policy x
    lists (`{policy: {lists: arm}}`, the baseline policy and lists first), the headline
    contrast and the analysis plan (metric, levels)."""

    experiment: str                                  # the name the service logs each user's arm under
    arms: dict[str, str]                             # arm -> label, in the order the tables show them
    factorial: dict[str, dict[str, str]] | None = None
    headline: tuple[str, str] | None = None
    contrasts: tuple[tuple[str, str], ...] = ()
    metric: str = "mean_time_per_session"
    alpha: float = 0.05
    srm_alpha: float = 0.001
    control: str = "C"

    def __post_init__(self) -> None:
        if self.control not in self.arms:
            raise AnalysisError(f"design {self.experiment!r}: no control arm {self.control!r} in {list(self.arms)}")
        if self.factorial is not None:
            check_design(self.factorial)

    def label(self, arm: str) -> str:
        return self.arms.get(arm, arm)


@dataclass
class Analysis:
    """Everything a report and a promotion read, computed once from a day's log."""

    design: Design
    users: pd.DataFrame                 # user -> the course's metrics
    arms: pd.Series                     # user -> arm
    table: pd.DataFrame                 # every arm vs C and the contrasts (`tables.TABLE_COLUMNS`)
    factorial: pd.DataFrame             # the 2x2 and the headline (`tables.FACTORIAL_COLUMNS`)
    per_arm: pd.DataFrame               # arm -> label, users, mean [lower, upper], headroom [..], capped share
    capped: pd.DataFrame                # arm -> episodes, capped, capped_share
    oracle: float                       # the day's Oracle (the headroom's ceiling)
    srm: dict = field(default_factory=dict)   # p_value, ok

    def model_effect(self, policy: str) -> dict[str, float] | None:
        """The 2x2's model effect under `policy` on the design's metric (% of the baseline lists')."""
        f = self.factorial
        r = f[(f["family"] == "model") & (f["given"] == policy) & (f["metric"] == self.design.metric)]
        if r.empty:
            return None
        return {k: float(r.iloc[0][k]) for k in ("effect", "lower", "upper", "lower_ratio", "upper_ratio",
                                                  "p_value", "p_holm")}

    def headroom(self) -> dict[str, float]:
        """label -> share of the Random -> Oracle headroom the arm served."""
        return dict(zip(self.per_arm["label"], self.per_arm["headroom"]))


def analyse(day: DayLog, design: Design, covariates: pd.DataFrame | None = None) -> Analysis:
    """The day's tables, each arm's served reward and headroom share, and its capped sessions.

    `covariates`: the users' metrics on an earlier day (CUPED), where they have one. The
    headroom's floor is the day's own Random arm, its ceiling the day's own Oracle."""
    return analyse_log(day.events, design, covariates=covariates, stats=day.stats, references=day.references)


def analyse_log(events: pd.DataFrame, design: Design, *, covariates: pd.DataFrame | None = None,
                stats: pd.DataFrame | None = None, references: dict | None = None) -> Analysis:
    """`analyse` of an event log alone: without the simulator's `stats` no capped shares, without
    its `references` no headroom."""
    users = user_metrics(events)
    arms = assign_arms(events, design.experiment)
    headline = [design.headline] if design.headline else []
    contrasts = headline + [c for c in design.contrasts if c not in headline]
    common = dict(experiment=design.experiment, labels=design.arms, alpha=design.alpha,
                  srm_alpha=design.srm_alpha, expected_arms=list(design.arms))
    table = effects_table(users, arms, control=design.control, contrasts=contrasts, covariates=covariates, **common)
    factorial = (factorial_table(users, arms, design.factorial, headline=design.headline, **common)
                 if design.factorial else pd.DataFrame(columns=list(FACTORIAL_COLUMNS)))
    per_arm = arm_means(users[design.metric], arms, design.alpha)
    per_arm = per_arm.reindex([a for a in design.arms if a in per_arm.index]
                              + [a for a in per_arm.index if a not in design.arms])
    oracle = (references or {})["oracle"].time_per_session if "oracle" in (references or {}) else float("nan")
    floor = float(per_arm.loc[design.control, "mean"])
    for col, src in (("headroom", "mean"), ("headroom_lower", "lower"), ("headroom_upper", "upper")):
        per_arm[col] = headroom_share(per_arm[src], floor, oracle)
    capped = (capped_shares(stats, arms, design.arms) if stats is not None
              else pd.DataFrame(columns=["name", "episodes", "capped", "capped_share"]))
    per_arm["capped_share"] = capped["capped_share"].reindex(per_arm.index)
    per_arm.insert(0, "label", [design.label(a) for a in per_arm.index])
    srm = {"p_value": float(table["srm_p_value"].iloc[0]), "ok": bool(table["srm_ok"].iloc[0])}
    return Analysis(design, users, arms, table, factorial, per_arm, capped, oracle, srm)
