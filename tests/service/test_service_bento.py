"""`bentoml build` packages the service with its configs and data; the built Bento serves the API."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from service.config import bentoml_models, read_config
from service.launch import ServiceProcess
from svc_fixtures import write_catalog

pytestmark = pytest.mark.slow
BENTOML = str(Path(sys.executable).with_name("bentoml"))
SAVE_MODEL = """
import sys, bentoml, numpy as np
with bentoml.models.create(sys.argv[1], labels={"mlflow_version": "1"}) as m:
    np.save(m.path_of("i2i.npy"), (np.arange(200, dtype=np.int32)[:, None] + 1) % 200)
"""


def test_build_and_serve_bento(repo, tmp_path, bentoml_home):
    ctx = tmp_path / "ctx"
    for part in ("service", "formats"):  # the service and the public formats it reads
        shutil.copytree(repo / part, ctx / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo / "bentofile.yaml", ctx)
    docker = yaml.safe_load((repo / "bentofile.yaml").read_text())["docker"]
    (ctx / docker["dockerfile_template"]).parent.mkdir(parents=True)
    shutil.copy(repo / docker["dockerfile_template"], ctx / docker["dockerfile_template"])
    write_catalog(ctx / "data" / "world" / "public" / "tracks.json")
    (ctx / "notes.txt").write_text("not part of the Bento")
    # the models the Bento's config serves, which the service declares (a promotion exports them)
    packed = bentoml_models(read_config(repo / yaml.safe_load((repo / "bentofile.yaml").read_text())["args"]["config"]))
    for tag in packed:
        subprocess.run([sys.executable, "-c", SAVE_MODEL, tag.split(":")[0]], check=True, cwd=repo)

    out = subprocess.run([BENTOML, "build", str(ctx), "--output", "tag"], capture_output=True, text=True,
                         cwd=ctx, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    tag = out.stdout.strip().splitlines()[-1].replace("__tag__:", "")
    assert tag.startswith("botify:")
    bento = next((bentoml_home / "bentos" / "botify").glob(tag.split(":")[1]))
    src = bento / "src"
    for f in ("service/service.py", "service/botify.py", "service/config/cold_start.yml", "formats/events.py",
              "data/world/public/tracks.json", "bentofile.yaml"):
        assert (src / f).is_file(), f
    # BentoML 1.4 packs models by tag (copied into an image by containerize / export)
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert sorted(m["tag"].split(":")[0] for s in info["services"] for m in s["models"]) \
        == sorted(t.split(":")[0] for t in packed) and packed
    assert info["args"] == {"config": "service/config/product.yml"}   # the config the Bento serves
    assert not (src / "notes.txt").exists()
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "ENTRYPOINT" in dockerfile
    # the packages are installed in a build stage; no compiler or git is installed anywhere
    assert "AS python-packages" in dockerfile and "COPY --from=python-packages" in dockerfile
    assert not any(tool in dockerfile for tool in ("build-essential", " git", "gcc"))
    assert (bento / "env" / "python" / "requirements.txt").read_text().count("mmh3")
    assert yaml.safe_load((bento / "bento.yaml").read_text())["service"] == "service.service:Botify"

    with ServiceProcess("service/config/cold_start.yml", target=tag, cwd=tmp_path,
                        env={"BOTIFY_LOG_DIR": str(tmp_path / "logs")}) as svc:
        assert requests.get(svc.url + "/").json()["status"] == "alive"
        r = requests.post(svc.url + "/next/3", json={"track": 5, "time": 1.0})
        assert r.status_code == 200 and 0 <= r.json()["track"] < 200
        assert requests.get(svc.url + "/track/9999").status_code == 404
    assert len((next((tmp_path / "logs").glob("events-*.jsonl"))).read_text().splitlines()) == 1
    # no BOTIFY_CONFIG: the Bento serves its own config, the product, over the model it packs
    with ServiceProcess("", target=tag, cwd=tmp_path, env={"BOTIFY_LOG_DIR": str(tmp_path / "logs-product")}) as svc:
        status = requests.get(svc.url + "/").json()
        assert status["experiments"] == ["PRODUCT"]
        assert status["models"]["session_aware"]["version"] == "1"
        assert requests.post(svc.url + "/next/3", json={"track": 5, "time": 1.0}).status_code == 200
