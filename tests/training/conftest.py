"""Fixtures of the training tests: a planted synthetic world and its event log, and a
throwaway MLflow store per test session (never the project's mlruns/)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def make_world(root: Path, n_tracks: int = 300, n_artists: int = 30, n_genres: int = 5,
               dim: int = 4, seed: int = 0) -> tuple[Path, np.ndarray]:
    """A world whose tracks cluster by artist (the planted structure); returns its embeddings."""
    rng = np.random.default_rng(seed)
    artist = np.arange(n_tracks) % n_artists
    centers = rng.normal(size=(n_artists, dim))
    emb = centers[artist] + 0.3 * rng.normal(size=(n_tracks, dim))
    pub = root / "public"
    pub.mkdir(parents=True, exist_ok=True)
    with open(pub / "tracks.json", "w") as fh:
        for t in range(n_tracks):
            fh.write(json.dumps({"track": t, "artist": f"artist {artist[t]}", "title": f"t{t}",
                                 "genre": f"g{artist[t] % n_genres}", "year": 2000,
                                 "popularity": float(rng.uniform())}) + "\n")
    (pub / "world.json").write_text(json.dumps({"name": "planted", "seed": seed, "tracks": n_tracks}))
    return root, emb


def make_log(path: Path, emb: np.ndarray, sessions: int = 1500, length: int = 8,
             n_users: int = 100, seed: int = 1) -> Path:
    """Sessions as the simulator plays them with a random recommender: the first track at
    time 1.0, then random tracks listened sigmoid(2 * <track, first>) of their length."""
    rng = np.random.default_rng(seed)
    n = len(emb)
    ts = 1_700_000_000_000
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for s in range(sessions):
            user = int(rng.integers(n_users))
            first = int(rng.integers(n))
            tracks = [first] + [int(x) for x in rng.integers(n, size=length - 1)]
            times = [1.0] + [round(float(1 / (1 + np.exp(-2 * emb[t] @ emb[first] + 2))), 2)
                             for t in tracks[1:]]
            for i, (t, tm) in enumerate(zip(tracks, times)):
                ts += 1
                last = i == len(tracks) - 1
                fh.write(json.dumps({"message": "last" if last else "next", "timestamp": ts,
                                     "user": user, "track": t, "time": tm, "latency": 0.001,
                                     "recommendation": None if last else tracks[i + 1],
                                     "experiments": {"COLD_START": "C"}}) + "\n")
    return path


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    world, emb = make_world(root / "world")
    log = make_log(root / "logs" / "events-0.jsonl", emb)
    return world, log, emb


@pytest.fixture(autouse=True, scope="module")
def mlflow_store(tmp_path_factory):
    """Every training test module writes to its own throwaway sqlite store (and BentoML
    home), never the project's; restored afterwards so other parts' tests are untouched."""
    d = tmp_path_factory.mktemp("mlruns")
    with pytest.MonkeyPatch.context() as env:   # restored when the module ends
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{d / 'mlflow.db'}")
        env.setenv("BENTOML_HOME", str(d / "bentoml"))
        # mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID for subprocesses: an earlier
        # module's would reach this one's `mlflow run --experiment-name` (which refuses both)
        env.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
        yield d


@pytest.fixture(scope="session")
def small_day(small_world, tmp_path_factory):
    """One day of the service's logs on the small world, played in-process by the simulator:
    the cold start's arms beside SessionAware over the catalog's lists, so sessions hold
    co-listening across artists (what the learners learn from). Returns the log folder."""
    from training.ab.day import DaySpec, Service, play_day
    from training.learning.layout import catalog_lists
    from training.data.catalog import load_catalog
    from formats import lists as list_format
    d = tmp_path_factory.mktemp("small-day")
    i2i = list_format.write_jsonl(d / "catalog-i2i.jsonl", catalog_lists(load_catalog(small_world), 50))
    service = Service({"random": {"kind": "random"}, "toppop": {"kind": "toppop", "top": 100},
                       "sa": {"kind": "session_aware", "i2i": str(i2i), "explore": 0.1, "listed_artists": "any"}},
                      [{"name": "DAY", "arms": {"C": "random", "T1": "toppop", "T2": "sa"}}], 42)
    play_day(DaySpec("the small day", d, "sim/config/small.yml", 11, 1, 500, service, in_process=True))
    return d / "logs"
