"""The simulator playing the real service: over HTTP and in-process, the same episodes and
the same event log (up to timestamps and latencies), as docs/architecture.md promises."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.launch import ServiceProcess

pytestmark = pytest.mark.slow
SIM_CONFIG = "sim/config/small.yml"


def config(tmp_path: Path, catalog: Path, name: str) -> Path:
    cfg = yaml.safe_load(Path("service/config/cold_start.yml").read_text())
    cfg["catalog"] = str(catalog)
    cfg["event_log"] = {"dir": str(tmp_path / name)}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def lines(folder: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in ("timestamp", "seq", "latency")}
            for f in sorted(folder.glob("events-*.jsonl")) for x in f.read_text().splitlines()]


def sim(repo: Path, stats: Path, *agent: str) -> None:
    subprocess.run([sys.executable, "-m", "sim.run", "--config", SIM_CONFIG, "--episodes", "60", "--seed", "3",
                    "--stats", str(stats), "single", *agent], cwd=repo, check=True, capture_output=True)


def test_http_and_in_process_play_alike(repo, small_catalog, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    local = config(tmp_path, small_catalog, "inproc")
    sim(repo, tmp_path / "inproc.csv", "--recommender", "inprocess", "--factory", "service.botify:load",
        "--factory-arg", str(local))
    with ServiceProcess(str(config(tmp_path, small_catalog, "http"))) as svc:
        sim(repo, tmp_path / "http.csv", "--recommender", "remote", "--url", svc.url)
    assert (tmp_path / "inproc.csv").read_text() == (tmp_path / "http.csv").read_text()
    served = lines(tmp_path / "http")
    assert served == lines(tmp_path / "inproc") and len(served) > 60
    assert {e["message"] for e in served} == {"next", "last"}
