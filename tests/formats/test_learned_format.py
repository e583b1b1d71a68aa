"""A learned version's folder (formats.learned): written once, read back whole, and a
folder that is not one (missing file, another world's lists, a pickle, NaN in JSON)
refused with the file named, before anything is served."""
from __future__ import annotations

import json

import numpy as np
import pytest

from formats import FormatError
from formats import learned as learned_format

META = {"name": "cooc", "learner": "cooccurrence", "config": {"lead": 2}, "window": {"days": [3, 4, 5]},
        "figures": {"pairs": 10.0}}


def _lists(n: int = 6, k: int = 3) -> np.ndarray:
    return ((np.arange(n)[:, None] + np.arange(1, k + 1)[None, :]) % n).astype(np.int32)


def test_a_version_is_read_back_as_it_was_written(tmp_path):
    model = tmp_path / "own"
    model.mkdir()
    (model / "vectors.npy").write_bytes(b"x")
    lists = _lists()
    lists[2, 2] = -1
    folder = learned_format.write(tmp_path / "v", lists, policy={"discount": 0.8}, learner=META, model=model)
    v = learned_format.read(folder, n_tracks=6)
    assert np.array_equal(np.asarray(v.lists), lists) and v.policy == {"discount": 0.8}
    assert v.learner["format"] == learned_format.FORMAT and v.learner["tracks"] == 6 and v.learner["k"] == 3
    assert v.learner["window"] == {"days": [3, 4, 5]} and (v.model / "vectors.npy").read_bytes() == b"x"
    rows = [json.loads(line) for line in (folder / learned_format.JSONL).read_text().splitlines()]
    assert rows[2] == {"track": 2, "recommendations": [3, 4]}   # the JSON lines drop the padding
    assert learned_format.read(learned_format.write(tmp_path / "w", lists, policy={}, learner=META)).model is None


def test_what_is_not_a_version_is_refused_naming_the_file(tmp_path):
    folder = learned_format.write(tmp_path / "v", _lists(), policy={}, learner=META)
    with pytest.raises(FormatError, match="another world"):
        learned_format.read(folder, n_tracks=7)
    with pytest.raises(FormatError, match="not empty"):
        learned_format.write(folder, _lists(), policy={}, learner=META)
    with pytest.raises(FormatError, match=r"lacks \['window'\]"):
        learned_format.write(tmp_path / "x", _lists(), policy={}, learner={k: v for k, v in META.items() if k != "window"})
    with pytest.raises(FormatError, match="not plain JSON"):
        learned_format.write(tmp_path / "y", _lists(), policy={"discount": float("nan")}, learner=META)
    with pytest.raises(FormatError, match="outside the catalog"):
        learned_format.write(tmp_path / "z", _lists() + 6, policy={}, learner=META)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()
    (folder / learned_format.POLICY).unlink()
    with pytest.raises(FormatError, match="policy.json is missing"):
        learned_format.read(folder)


def test_a_pickled_table_is_refused_unread(tmp_path):
    folder = learned_format.write(tmp_path / "v", _lists(), policy={}, learner=META)
    np.save(folder / learned_format.TABLE, np.array([[{"x": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="i2i.npy"):
        learned_format.read(folder)


def test_an_exploration_table_is_optional_checked_when_written_and_read_back(tmp_path):
    cand = np.array([[1, 2, -1], [0, -1, -1], [0, 1, 2]], dtype=np.int64)
    weight = np.array([[0.5, 0.25, 0.0], [1.0, 0.0, 0.0], [0.1, 0.1, 0.1]])
    folder = learned_format.write(tmp_path / "v", _lists(), policy={"explore_levels": "0.5:0.3 1:0.02"}, learner=META,
                                  explore=(cand, weight))
    v = learned_format.read(folder, n_tracks=6)
    assert v.explore[0].dtype == np.int32 and v.explore[1].dtype == np.float32
    assert np.array_equal(v.explore[0], cand) and np.allclose(v.explore[1], weight)
    assert learned_format.read_levels(v.policy["explore_levels"]) == [(0.5, 0.3), (1.0, 0.02)]
    assert learned_format.read(learned_format.write(tmp_path / "w", _lists(), policy={}, learner=META)).explore is None
    with pytest.raises(FormatError, match="a pad \\(-1\\) carries weight"):
        learned_format.write(tmp_path / "x", _lists(), policy={}, learner=META, explore=(cand, weight + 0.1))
    assert not (tmp_path / "x").exists(), "nothing is written when the table is refused"
    with pytest.raises(FormatError, match="another world's table"):
        learned_format.read_explore(folder / learned_format.EXPLORE, n_artists=4)
    assert learned_format.levels_text([(0.2, 0.5), (1.0, 0.02)]) == "0.2:0.5 1:0.02"
    with pytest.raises(FormatError, match="rising edges"):
        learned_format.read_levels("1:0.5 0.2:0.1")


def test_training_and_the_service_number_artists_alike(small_world):
    """The table's artist codes are the training catalog's; the service reads them with its own."""
    from service.catalog import load_catalog as service_catalog
    from training.data.catalog import load_catalog as training_catalog
    trained = training_catalog(small_world)
    served = service_catalog(small_world / "public" / "tracks.json")
    assert np.array_equal(trained.artist, served.artist)
    assert trained.n_artists == len(served.artist_tracks) == len(served.artist_names)
