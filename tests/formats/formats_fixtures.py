"""Helpers of the formats tests: a small world with artists met out of name order."""
from __future__ import annotations

import json
from pathlib import Path

# artists met in catalog order C, A, B: numbering them as met (the service's old rule) and by
# name (training's) disagreed
ARTISTS = ["Cyan", "Amber", "Blue", "Amber", "Cyan", "Blue", "Dune", "Amber"]
GENRES = ["rock", "jazz", "rock", "ambient", "jazz", "rock", "ambient", "jazz"]


def write_world(root: Path, artists=ARTISTS, genres=GENRES, tracks: int | None = None) -> Path:
    pub = root / "public"
    pub.mkdir(parents=True)
    with open(pub / "tracks.json", "w") as f:
        for t, (a, g) in enumerate(zip(artists, genres)):
            f.write(json.dumps({"track": t, "artist": a, "title": f"song {t}", "genre": g, "year": 2001,
                                "popularity": float(t % 3)}) + "\n")
    (pub / "world.json").write_text(json.dumps({"name": "t", "tracks": len(artists) if tracks is None else tracks}))
    return root
