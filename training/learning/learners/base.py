"""The learner interface, and how a learner is found by name or import path.

    class MyLearner(Learner):
        Settings = MySettings            # a dataclass: its YAML is the learner's config
        def learn(self, window, k, workdir): ... return Learned(lists, policy, figures, model)

A learner reads only what its `Window` gives (the logs and the public catalog) and
returns a `Learned`; tracking, registration and serving are done for it.
"""
from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from training.learning.config import from_yaml
from training.learning.layout import Layout
from training.learning.window import Window

#: the project's learners by name; anything else is an import path `module:Class`
BUILTIN = {
    "embedding": "training.learning.learners.embedding:EmbeddingLearner",
    "cooccurrence": "training.learning.learners.cooccurrence:CooccurrenceLearner",
    "item2vec": "training.learning.learners.item2vec:Item2VecLearner",
    "als": "training.learning.learners.als:ALSLearner",
    "artist": "training.learning.learners.artist:ArtistLearner",
}


@dataclass
class Learned:
    """What a learner made of a window."""

    lists: np.ndarray                                   # int32 [tracks, k], best first, -1 pads
    policy: dict[str, Any] = field(default_factory=dict)    # serving-policy parameters it estimated
    figures: dict[str, float] = field(default_factory=dict)  # its own offline figures
    model: Path | None = None                           # a folder of its own model files, if any
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch series, if any
    explore: tuple[np.ndarray, np.ndarray] | None = None   # exploration table (cand, weight): formats.learned


class Learner(ABC):
    """From a window of logs and the public catalog to i2i lists; one config, one job."""

    #: the settings dataclass; its YAML is the learner's config file
    Settings: ClassVar[type] = Layout

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings if settings is not None else self.Settings()

    @classmethod
    def from_config(cls, config: str | Path | None = None, **overrides: Any) -> "Learner":
        """The learner with its settings from a YAML file (None: the defaults) and overrides."""
        return cls(from_yaml(cls.Settings, config, **overrides))

    def layout(self) -> Layout:
        """How its candidates become lists (`training.learning.layout`)."""
        s = self.settings
        return Layout(s.lead, s.max_per_artist, s.fill)

    def describe(self) -> dict:
        """Its settings as plain data (a version's `learner.json` `config`)."""
        s = self.settings
        return dataclasses.asdict(s) if dataclasses.is_dataclass(s) else dict(s)

    @abstractmethod
    def learn(self, window: Window, k: int, workdir: Path) -> Learned:
        """Lists of length `k` for every catalog track; `workdir` is an empty folder for
        any files it keeps (`Learned.model`)."""


def save_arrays(workdir: Path, **arrays: np.ndarray) -> Path:
    """A learner's own files as plain `.npy` arrays (no pickle) in `workdir/model`."""
    out = Path(workdir) / "model"
    out.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(out / f"{name}.npy", np.asarray(array), allow_pickle=False)
    return out


class LearnerError(ValueError):
    """A learner that cannot be found or made; the message names the fix."""


def learner_class(ref: str) -> type[Learner]:
    """The learner a name (`BUILTIN`) or an import path (`package.module:Class`) names."""
    path = BUILTIN.get(ref, ref)
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise LearnerError(f"learner {ref!r}: not one of {sorted(BUILTIN)} nor an import path "
                           f"`package.module:Class`")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise LearnerError(f"learner {ref!r}: cannot import {module_name!r} ({e}); is its folder on "
                           f"PYTHONPATH?") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Learner)):
        raise LearnerError(f"learner {ref!r}: {module_name}.{attr} is not a subclass of "
                           f"training.learning.learners.base.Learner")
    return cls


@dataclass(frozen=True)
class LearnerSpec:
    """A learner as a job names it: a name for reports, the learner (a `BUILTIN` name or
    an import path), its YAML config (None: its defaults) and a few overridden settings."""

    name: str
    learner: str = "embedding"
    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def make(self, root: Path | None = None) -> Learner:
        """The learner, its config read relative to `root` (the repo) unless absolute."""
        cls = learner_class(self.learner)
        config = None
        if self.config:
            config = Path(self.config)
            config = config if config.is_absolute() or root is None else root / config
        return cls.from_config(config, **self.overrides)
