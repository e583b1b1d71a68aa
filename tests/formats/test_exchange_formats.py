"""The event log and the recommendation lists, defined once (formats.events, formats.lists):
a line the service writes training reads back whole, a table training writes the service
loads, and bad lists give the same clear error on both sides."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from formats import FormatError
from formats import events as event_format
from formats import lists as list_format

from formats_fixtures import ARTISTS, GENRES, write_world


def served_log(tmp_path: Path, max_bytes: int) -> tuple[Path, list[tuple[str, int, int]]]:
    """A service (in-process, every arm kind that logs a propensity) plays sessions into a log
    rotated every `max_bytes`; returns the log folder and (message, user, track) per request."""
    from service.botify import load
    world = write_world(tmp_path / "w", ARTISTS * 5, GENRES * 5)
    n = len(ARTISTS) * 5
    list_format.write_jsonl(tmp_path / "i2i.jsonl",
                            list_format.to_table({t: [(t + j) % n for j in range(1, 6)] for t in range(n)}))
    cfg = {"catalog": str(world / "public" / "tracks.json"), "seed": 3,
           "event_log": {"dir": str(tmp_path / "log"), "max_bytes": max_bytes, "backups": 50},
           "session_store": {"kind": "memory"},
           "recommenders": {"random": {"kind": "random"}, "sticky": {"kind": "sticky_artist"},
                            "sa": {"kind": "session_aware", "i2i": str(tmp_path / "i2i.jsonl"), "top": 5,
                                   "explore": 0.3}},
           "experiments": [{"name": "E", "arms": {"C": "random", "T1": "sticky", "T2": "sa"}}]}
    (tmp_path / "svc.yml").write_text(yaml.safe_dump(cfg))
    app = load(str(tmp_path / "svc.yml"), worker="w0")
    sent = []
    for user in range(12):
        track, time = user % n, 1.0
        for step in range(4):
            sent.append(("next", user, track))
            track = app.recommend_next(user, track, time)
            time = 0.25 * (step + 1)
        sent.append(("last", user, track))
        app.end_session(user, track, time)
    app.close()
    return tmp_path / "log", sent


def test_a_line_the_service_writes_is_read_back_by_training_with_the_same_fields(tmp_path):
    from training.data.events import read_events
    log, sent = served_log(tmp_path, max_bytes=2000)
    files = event_format.log_files(log)
    assert [f.name for f in files][-1] == event_format.file_name("w0")
    assert len(files) > 3 and all(f.name.startswith("events-w0.jsonl.") for f in files[:-1])  # rotated
    raw = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    for obj in raw:  # every field of the schema, in its order, of its type
        assert tuple(obj) == event_format.COLUMNS
        for key, types in event_format.FIELDS.items():
            assert type(obj[key]) in tuple(t or type(None) for t in types), (key, obj[key])
        assert obj["message"] in event_format.MESSAGES
    # the rotation order the reader uses is the order the service wrote in
    assert [(o["message"], o["user"], o["track"]) for o in raw] == sent
    df = read_events(log)
    assert list(df.columns) == list(event_format.COLUMNS)
    assert [(m, u, t) for m, u, t in zip(df["message"], df["user"], df["track"])] == sent
    for obj, row in zip(raw, df.to_dict("records")):
        for key in ("message", "timestamp", "user", "seq", "track", "time", "latency", "experiments"):
            assert row[key] == obj[key], key
        for key in ("recommendation", "propensity"):  # null: NA (NaN for a float column)
            assert pd.isna(row[key]) if obj[key] is None else row[key] == obj[key], key
    assert {o["message"] for o in raw} == set(event_format.MESSAGES)
    assert any(o["propensity"] not in (None, 1.0) for o in raw)


def test_the_schema_line_template_names_the_fields_in_order():
    keys = [part.split('"')[1] for part in event_format.LINE.split(",")]
    assert tuple(keys) == event_format.COLUMNS
    line = event_format.LINE % ("next", 1, 2, 17, 3, 0.5, 0.001, "4", "null", '{"E":"C"}')
    assert json.loads(line) == {"message": "next", "timestamp": 1, "user": 2, "seq": 17, "track": 3, "time": 0.5,
                                "latency": 0.001, "recommendation": 4, "propensity": None,
                                "experiments": {"E": "C"}}


def test_a_table_training_writes_is_loaded_by_the_service(tmp_path):
    """What training's export writes (formats.lists, both forms) the service loads as the same
    table, and the offline evaluation reads as the service does."""
    from service.artifacts import load_lists
    from training.learning.offline import read_lists
    lists = {0: [3, 1, 2], 1: [0], 2: [], 3: [2, 1]}  # ragged: -1 pads, an empty list
    table = list_format.to_table(lists, n_keys=4)
    assert table.dtype == np.int32 and table.tolist() == [[3, 1, 2], [0, -1, -1], [-1, -1, -1], [2, 1, -1]]
    npy = list_format.write_table(tmp_path / "i2i.npy", table, n_tracks=4)
    jsonl = list_format.write_jsonl(tmp_path / "i2i.jsonl", table, "track")
    assert jsonl.read_text().splitlines()[1] == '{"track": 1, "recommendations": [0]}'  # no padding in JSON
    assert not list(tmp_path.glob("*.tmp*"))
    for path in (npy, jsonl):
        got = load_lists(path, "track", 4, 4, "cmd")
        assert got.dtype == np.int32 and np.array_equal(got, table)
        assert np.array_equal(read_lists(path, 4), table)
    assert isinstance(load_lists(npy, "track", 4, 4, "cmd"), np.memmap)  # mapped, not parsed


def test_a_table_the_service_would_refuse_is_never_written(tmp_path):
    for bad, problem in ((np.zeros((3, 2), dtype=np.float32), "expected a 2-D int32 table"),
                         (np.full((3, 2), 7, dtype=np.int32), "outside the catalog"),
                         (np.full((3, 2), -2, dtype=np.int32), "outside the catalog")):
        with pytest.raises(FormatError, match=problem):
            list_format.write_table(tmp_path / "i2i.npy", bad, n_tracks=3)
        assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("content, problem", [
    ('{"track": 0, "recommendations": [1]}\n{"track": 9, "recommendations": [1]}\n',
     "malformed (line 2: 'track' must be an integer in the catalog)"),
    ('{"track": 0, "recommendations": [1, 5]}\n', "malformed (line 1: 'recommendations' must be a list of catalog tracks)"),
    ('{"track": 0, "recommendations": [1]}\n{"track"\n', "malformed (line 2: not valid JSON"),
    ('\n', "no lists in file"),
])
def test_bad_lists_give_the_same_error_to_the_service_and_to_training(tmp_path, content, problem):
    from service.artifacts import ArtifactError, load_lists
    from training.learning.offline import read_lists
    path = tmp_path / "i2i.jsonl"
    path.write_text(content)
    with pytest.raises(ArtifactError) as svc:
        load_lists(path, "track", 3, 3, "mlflow run . -e recommend")
    with pytest.raises(ValueError) as trn:
        read_lists(path, 3)
    assert f"{path}: {problem}" in str(svc.value) and "mlflow run . -e recommend" in str(svc.value)
    assert problem in str(trn.value) and str(path) in str(trn.value)
