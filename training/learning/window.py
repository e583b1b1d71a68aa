"""A window: what a learner may learn from, the service's logs of some days and the public
catalog (never the world's hidden truth), with the seed its random draws take.

Read lazily and once: several learners trained on one window share its parsed events.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from training.data.catalog import Catalog, load_catalog
from training.data.events import EventLogError, log_digest, read_events, sessionize


def load_logs(logs: list[str]) -> tuple[pd.DataFrame, str, list[str]]:
    """Events of one or more logs (paths, or `runs:/<id>/<artifact>` of a collect run),
    their combined sha256, and the local paths read (artifacts are downloaded first)."""
    frames, digests, sources = [], [], []
    for ref in logs:
        path = ref
        if ref.startswith("runs:/"):
            import mlflow
            path = mlflow.artifacts.download_artifacts(artifact_uri=ref)
        frames.append(read_events(path))
        digests.append(log_digest(path))
        sources.append(str(path))
    events = pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable",
                                                               ignore_index=True)
    digest = digests[0] if len(digests) == 1 else hashlib.sha256(
        "".join(digests).encode()).hexdigest()
    return events, digest, sources


@dataclass
class Window:
    """The logs of `days` (files, folders or `runs:/` artifacts, oldest first) and the
    public catalog of `world`; `seed` seeds every random draw of a learner."""

    logs: tuple[str, ...]
    world: Path
    seed: int = 424242
    days: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self.logs = tuple(str(p) for p in self.logs)
        self.world = Path(self.world)
        self.days = tuple(int(d) for d in self.days)
        if not self.logs:
            raise ValueError("a window needs at least one event log")

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.world)

    @cached_property
    def _read(self) -> tuple[pd.DataFrame, str, list[str]]:
        events, digest, sources = load_logs(list(self.logs))
        bad = events[(events["track"] < 0) | (events["track"] >= self.catalog.size)]
        if len(bad):
            raise EventLogError(f"the log names track {int(bad['track'].iloc[0])} which is not in the "
                                f"catalog {self.catalog.path} ({self.catalog.size} tracks): log and world differ")
        return events, digest, sources

    @property
    def events(self) -> pd.DataFrame:
        """Every event of the window's logs, by timestamp (`training.data.events.read_events`)."""
        return self._read[0]

    @property
    def digest(self) -> str:
        """sha256 naming the window's logs (a version's `dataset_digest`)."""
        return self._read[1]

    @property
    def sources(self) -> list[str]:
        return self._read[2]

    @cached_property
    def sessions(self) -> pd.DataFrame:
        """The events cut into sessions (`training.data.events.sessionize`)."""
        return sessionize(self.events)

    @cached_property
    def policy_estimates(self) -> dict:
        """SessionAware's constants estimated from the window's logs, each with its count
        (`training.learning.policy_params`): every version trained on the window carries them."""
        from training.learning import policy_params
        return policy_params.estimate(self.sessions, self.catalog.artist)

    def describe(self) -> dict:
        """What a version records of its window (`learner.json`'s `window`)."""
        return {"days": list(self.days), "logs": list(self.logs), "dataset_digest": self.digest,
                "seed": self.seed, "world": str(self.world), "tracks": self.catalog.size}
