"""A small deterministic fixture world for the service's tests: catalog, i2i lists,
per-user lists and a config, written into a temp dir (no simulator needed)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

N_TRACKS = 200
N_ARTISTS = 20
GENRES = ["rock", "jazz", "pop", "folk"]


def write_catalog(path: Path, n: int = N_TRACKS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for t in range(n):
            a = t % N_ARTISTS
            f.write(json.dumps({"track": t, "artist": f"artist {a}", "title": f"song {t}",
                                "genre": GENRES[a % len(GENRES)], "year": 1990 + t % 30,
                                "popularity": float((t * 37) % 101)}) + "\n")
    return path


def i2i_lists(n: int = N_TRACKS, k: int = 10) -> dict[int, list[int]]:
    """Track t's list: t+1, t+2, ... (mod n): easy to reason about in assertions."""
    return {t: [(t + j) % n for j in range(1, k + 1)] for t in range(n)}


def write_lists(path: Path, lists: dict[int, list[int]], key: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for k, recs in lists.items():
            f.write(json.dumps({key: k, "recommendations": recs}) + "\n")
    return path


def make_world(root: Path, **overrides) -> Path:
    """Catalog + artifacts + a config with every recommender kind; returns the config path."""
    cat = write_catalog(root / "public" / "tracks.json")
    i2i = write_lists(root / "i2i.jsonl", i2i_lists(), "track")
    users = write_lists(root / "lists.jsonl", {u: [u % N_TRACKS, (u + 7) % N_TRACKS] for u in range(50)}, "user")
    cfg = {
        "catalog": str(cat),
        "seed": 7,
        "event_log": {"dir": str(root / "logs"), "max_bytes": 1 << 20, "backups": 3},
        "session_store": {"kind": "memory", "ttl_seconds": 600},
        "recommenders": {
            "random": {"kind": "random"},
            "toppop": {"kind": "toppop", "top": 10},
            "sticky": {"kind": "sticky_artist"},
            "indexed": {"kind": "indexed", "lists": str(users)},
            "contextual": {"kind": "contextual", "i2i": str(i2i)},
            "history": {"kind": "i2i_history", "i2i": str(i2i), "history": 10},
            "session_aware": {"kind": "session_aware", "i2i": str(i2i), "top": 10},
        },
        "experiments": [{"name": "EXP", "arms": {"C": "random", "T1": "session_aware"}},
                        {"name": "AA", "arms": {"C": "random", "T1": "random"}}],
    }
    cfg.update(overrides)
    path = root / "config.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def play(b, user: int, first: int, times: list[float]) -> list[int]:
    """A session as the simulator plays it in-process: the answers become the next requests' tracks."""
    out, track, t = [], first, 1.0
    for x in times:
        track = b.recommend_next(user, track, t)
        out.append(track)
        t = x
    b.end_session(user, track, t)
    return out
