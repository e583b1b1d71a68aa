"""An i2i list named as a BentoML model tag (`bentoml:NAME:VERSION`) is read from the store."""
from __future__ import annotations

import subprocess
import sys

import yaml

from svc_fixtures import make_world

SAVE = """
import shutil, sys, bentoml
with bentoml.models.create("botify-i2i-test") as model:
    shutil.copy(sys.argv[1], model.path_of("i2i.jsonl"))
print(model.tag)
"""

LOAD = """
import sys
from service.botify import load
b = load(sys.argv[1], worker="t")
print(b.recommend_next(3, 10, 1.0))
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
    assert out.stdout.strip() == "87"  # track 10's list in the model: [87]
    cfg["recommenders"]["session_aware"]["i2i"] = "bentoml:no-such-model:latest"
    world.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-c", LOAD, str(world)], capture_output=True, text=True, cwd=repo)
    assert out.returncode != 0 and "no-such-model" in out.stderr and "mlflow run . -e recommend" in out.stderr
    assert tag.startswith("botify-i2i-test:")
