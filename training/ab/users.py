"""A day's event log as users: each user's metrics (the course's, user level) and arm, and
each arm's mean with its interval."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from training.ab.stats import AnalysisError
from training.data.events import sessionize

#: The course's user-level metrics, plus the time of recommended tracks only (the course's
#: `time` includes each session's first track, which the user chose and no recommender did).
METRICS: tuple[str, ...] = (
    "time",
    "sessions",
    "mean_request_latency",
    "mean_tracks_per_session",
    "mean_time_per_session",
    "rec_time",
    "mean_rec_time_per_session",
)

#: Metrics that are an exact shift of another per user, so the same test: every session's
#: first track is played with time 1.0, hence mean_rec_time_per_session = mean_time_per_session - 1.
TWINS: dict[str, str] = {"mean_rec_time_per_session": "mean_time_per_session"}

#: The metrics the service's speed, not the recommendation, decides; they differ between
#: an HTTP and an in-process run of the same seed.
LATENCY_METRICS: tuple[str, ...] = ("mean_request_latency",)


def user_metrics(events: pd.DataFrame) -> pd.DataFrame:
    """The course's per-user table: sessions, tracks, time, latency and their ratios.

    Sessions are cut by `training.data.events.sessionize` (a session ends at "last"; a trailing
    session without one still counts, as in the course), the same cut training uses.
    `tracks` counts events (every "next" and the closing "last"), which is the number of
    tracks played including each session's first; `rec_time` drops the first event of each
    session (the track the user picked, always time 1.0 in the simulator).
    """
    if events is None or len(events) == 0:
        raise AnalysisError("the event log is empty: nothing to analyse "
                            "(did the simulator reach the service? is event_log.dir right?)")
    ev = sessionize(events)
    ev = ev.assign(rec_time=np.where(ev["position"].to_numpy() == 0, 0.0, ev["time"].to_numpy(float)))
    g = ev.groupby("user", sort=True)
    users = pd.DataFrame({
        "sessions": g["session"].nunique().astype(float),
        "tracks": g.size().astype(float),
        "time": g["time"].sum().astype(float),
        "rec_time": g["rec_time"].sum().astype(float),
        "latency": g["latency"].sum().astype(float),
    })
    users["mean_request_latency"] = users["latency"] / users["tracks"]
    users["mean_tracks_per_session"] = users["tracks"] / users["sessions"]
    users["mean_time_per_session"] = users["time"] / users["sessions"]
    users["mean_rec_time_per_session"] = users["rec_time"] / users["sessions"]
    users.index.name = "user"
    return users


def assign_arms(events: pd.DataFrame, experiment: str) -> pd.Series:
    """Each user's arm in `experiment`, from the `experiments` map the service logged.

    A user must keep one arm for the whole experiment; two arms for one user means the
    assignment is broken and no comparison of arms can be trusted.
    """
    if len(events) == 0:
        raise AnalysisError("the event log is empty: no arms to read")
    col = f"experiments.{experiment}"
    if col in events.columns:  # a reader that flattened the map
        arms = events[col]
    else:
        arms = events["experiments"].map(lambda m: (m or {}).get(experiment) if isinstance(m, Mapping) else None)
    frame = pd.DataFrame({"user": events["user"].to_numpy(), "arm": arms.to_numpy()}).dropna()
    if frame.empty:
        raise AnalysisError(f"no event carries experiment {experiment!r}: is it active in the service's config?")
    per_user = frame.groupby("user")["arm"].agg(["first", "nunique"])
    broken = per_user.index[per_user["nunique"] > 1]
    if len(broken):
        raise AnalysisError(f"experiment {experiment!r}: {len(broken)} user(s) seen in more than one arm "
                            f"(e.g. user {broken[0]}); the assignment is not deterministic")
    out = per_user["first"].astype(str)
    out.name = "arm"
    return out


def arm_means(values: pd.Series, arms: pd.Series, alpha: float = 0.05) -> pd.DataFrame:
    """Per arm: users, mean and its t interval (user-level values)."""
    rows = []
    for arm, y in values.groupby(arms.reindex(values.index)):
        y = y.astype(float)
        n = len(y)
        m = float(y.mean())
        half = float(stats.t.ppf(1 - alpha / 2, n - 1) * y.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
        rows.append({"arm": arm, "users": n, "mean": m, "lower": m - half, "upper": m + half})
    return pd.DataFrame(rows).set_index("arm")
