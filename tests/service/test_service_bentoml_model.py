"""An i2i list named as a BentoML model tag (`bentoml:NAME:VERSION`) is read from the store."""
from __future__ import annotations

import json
import subprocess
import sys

import yaml


SAVE = """
import shutil, sys, bentoml
labels = {"mlflow_model": "botify-i2i", "mlflow_version": "7", "mlflow_run_id": "abc123"}
with bentoml.models.create("botify-i2i-test", labels=labels) as model:
    shutil.copy(sys.argv[1], model.path_of("i2i.jsonl"))
print(model.tag)
"""

LOAD = """
import sys
from service.botify import load
import json
b = load(sys.argv[1], worker="t")
print(b.recommend_next(3, 10, 1.0))
print(json.dumps(b.status()["models"]))
"""


def test_i2i_from_bentoml_model_tag(world, tmp_path, repo):
    i2i = tmp_path / "model-i2i.jsonl"
    i2i.write_text("".join('{"track": %d, "recommendations": [%d]}\n' % (t, (t + 77) % 200) for t in range(200)))
    tag = subprocess.run([sys.executable, "-c", SAVE, str(i2i)], capture_output=True, text=True, check=True,
                         cwd=repo).stdout.strip()
    cfg = yaml.safe_load(world.read_text())
    cfg["recommenders"]["session_aware"] = {"kind": "session_aware", "i2i": "bentoml:botify-i2i-test:latest",
                                            "strategy": "seed"}
    cfg["experiments"] = [{"name": "E", "arms": {"C": "session_aware"}}]
    world.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-c", LOAD, str(world)], capture_output=True, text=True, cwd=repo)
    assert out.returncode == 0, out.stderr[-1500:]
    rec, models = out.stdout.strip().splitlines()
    assert rec == "87"  # track 10's list in the model: [87]
    # GET / traces the served model to its registry version
    assert json.loads(models) == {"session_aware": {"bentoml_model": tag, "name": "botify-i2i",
                                                    "version": "7", "run_id": "abc123"}}
    cfg["recommenders"]["session_aware"]["i2i"] = "bentoml:no-such-model:latest"
    world.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-c", LOAD, str(world)], capture_output=True, text=True, cwd=repo)
    assert out.returncode != 0 and "no-such-model" in out.stderr and "-e to_bentoml" in out.stderr
    assert "bento_name=no-such-model" in out.stderr and "make experiment" in out.stderr
    assert tag.startswith("botify-i2i-test:")


def test_i2i_table_from_bentoml_model_is_memory_mapped_and_checked(tmp_path):
    """A model's `i2i.npy` is read as is (no JSON parse), memory-mapped, and checked like a file."""
    import numpy as np
    import pytest

    from service.artifacts import load_lists
    from service.catalog import ArtifactError
    table = np.full((200, 3), -1, dtype=np.int32)
    table[:, 0] = (np.arange(200) + 77) % 200
    np.save(tmp_path / "i2i.npy", table)
    got = load_lists(tmp_path / "i2i.npy", "track", 200, 200, "cmd")
    assert isinstance(got, np.memmap) and got[10].tolist() == [87, -1, -1]
    for bad in (table[:100], table.astype(np.int64), np.full((200, 3), 200, dtype=np.int32)):
        np.save(tmp_path / "bad.npy", bad)
        with pytest.raises(ArtifactError):
            load_lists(tmp_path / "bad.npy", "track", 200, 200, "cmd")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ArtifactError, match="not a numeric"):
        load_lists(tmp_path / "obj.npy", "track", 200, 200, "cmd")
