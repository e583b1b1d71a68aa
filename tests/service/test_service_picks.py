"""Every recommender kind, and each of SessionAware's options, answers the same sessions with
the same picks, propensities and log lines as the reference run stored in `picks.json`.

A change that moves any answer fails here; if the change is meant to, regenerate the file
and say why in the commit:

    python tests/service/test_service_picks.py --write
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]   # run as a script too (--write)
from svc_fixtures import N_TRACKS, write_catalog, write_lists  # noqa: E402

GOLDEN = HERE / "picks.json"
I2I = "i2i.jsonl"
VARIANTS: dict[str, dict] = {
    "random": {"kind": "random"},
    "toppop": {"kind": "toppop", "top": 10},
    "toppop_log": {"kind": "toppop", "top": 5, "log": "warmup-log"},
    "sticky_artist": {"kind": "sticky_artist"},
    "indexed": {"kind": "indexed", "lists": "lists.jsonl"},
    "contextual": {"kind": "contextual", "i2i": I2I},
    "i2i_history": {"kind": "i2i_history", "i2i": I2I, "history": 4},
    "session_aware": {"kind": "session_aware", "i2i": I2I},
    "session_aware_seed": {"kind": "session_aware", "i2i": I2I, "top": 7, "strategy": "seed"},
    "session_aware_priors": {"kind": "session_aware", "i2i": I2I, "first_artist_prior": 0.6, "fresh_start": 0.5,
                             "discount": 0.7, "genre_artists": 3},
    "session_aware_explore_list": {"kind": "session_aware", "i2i": I2I, "explore": 0.2},
    "session_aware_explore_catalog": {"kind": "session_aware", "i2i": I2I, "explore": 0.1,
                                      "explore_from": "catalog", "log": "warmup-log"},
    "session_aware_any_session": {"kind": "session_aware", "i2i": I2I, "listed_artists": "any",
                                  "new_artists": "session"},
    "session_aware_session_tuned": {"kind": "session_aware", "i2i": I2I, "new_artists": "session",
                                    "liked_time": 0.7, "position_decay": 5},
}
USERS, STEPS = 20, 8


def _world(root: Path) -> None:
    write_catalog(root / "tracks.json")
    rng = random.Random(5)   # irregular lists, some short (-1 padded in the table)
    write_lists(root / I2I, {t: rng.sample(range(N_TRACKS), rng.randint(3, 12)) for t in range(N_TRACKS)}, "track")
    write_lists(root / "lists.jsonl", {u: rng.sample(range(N_TRACKS), 4) for u in range(USERS // 2)}, "user")


def _config(root: Path, name: str, spec: dict, log: str) -> Path:
    path = root / f"{name}.yml"
    path.write_text(yaml.safe_dump({
        "catalog": "tracks.json", "seed": 11, "event_log": {"dir": log}, "session_store": {"kind": "memory"},
        "recommenders": {name: spec}, "experiments": [{"name": "PICKS", "arms": {"C": name}}]}))
    return path


def _play(config: Path, root: Path) -> None:
    from service.botify import load

    core = load(config, worker="w", root=root)
    rng = random.Random(3)
    for user in range(USERS):
        track, time = rng.randrange(N_TRACKS), 1.0
        for _ in range(STEPS):
            track = core.recommend_next(user, track, time)
            time = rng.choice([0.0, 0.3, 0.6, 0.9, 1.0])
        core.end_session(user, track, time)
    core.close()


def _lines(log: Path) -> list[list]:
    """(recommendation, propensity) of each line: the requests follow from them (each track is
    the previous answer), the rest of a line from the request."""
    return [[e["recommendation"], e["propensity"]]
            for f in sorted(log.glob("events-*.jsonl")) for e in map(json.loads, f.read_text().splitlines())]


def picks(root: Path) -> dict[str, list[list]]:
    _world(root)
    _play(_config(root, "random", VARIANTS["random"], "warmup-log"), root)
    out = {}
    for name, spec in VARIANTS.items():
        _play(_config(root, name, spec, f"log-{name}"), root)
        out[name] = _lines(root / f"log-{name}")
    return out


def test_every_kind_answers_as_the_reference_run(tmp_path: Path) -> None:
    expected = json.loads(GOLDEN.read_text())
    got = json.loads(json.dumps(picks(tmp_path)))
    assert set(got) == set(expected)
    for name in expected:
        assert len(got[name]) == len(expected[name]) == USERS * (STEPS + 1), name
        for i, (a, b) in enumerate(zip(got[name], expected[name])):
            assert a == b, f"{name}: line {i} is {a}, the reference run's {b}"
    assert not np.isnan([p for _, p in got["session_aware"] if p is not None]).any()


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as d:
        GOLDEN.write_text(json.dumps(picks(Path(d)), separators=(",", ":")) + "\n")
    print(f"wrote {GOLDEN}")
