"""The daily loop end to end: `mlflow run . -e loop -P quick=true -P days=2` over HTTP on the
small world, against a throwaway MLflow store; then a second loop whose day-1 service is
killed mid-day, which must fail and leave `@champion` where the first loop put it.

What a user of the loop relies on: one parent run with a child run per day (the steps
nested under their day), metrics indexed by day, every registered version carrying its
lineage (days trained on, parent version, dataset digest), `@champion` moving exactly as
the days' decisions say, and a failed day never moving it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from training.jobs import loop as L
from training.registry import tracking
from training.jobs.configs import LOOP_CONFIG, load_loop

pytestmark = pytest.mark.slow

MODEL = "botify-i2i-small"      # the quick loop's registered model


def _champion(client: MlflowClient, name: str = MODEL) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, tracking.CHAMPION).version)
    except MlflowException:
        return None


@pytest.fixture(scope="module")
def store(tmp_path_factory, small_world, repo):
    """A throwaway MLflow store and BentoML home, the env that points every process at them, and
    the loop's config with SessionAware playing the anchor's list in order (`strategy: seed`):
    on the small world the default strategy leans on the catalog's artists so much that the
    lists hardly matter, and this test needs a model effect large enough to promote."""
    d = tmp_path_factory.mktemp("loop")
    cfg = yaml.safe_load((repo / LOOP_CONFIG).read_text())
    cfg["service"]["policies"]["SessionAware"]["strategy"] = "seed"
    (d / "loop.yml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    # the failure test needs a day 1, not a choice of recipes: one recipe is quicker
    cfg["quick"]["challengers"] = cfg["quick"]["challengers"][:1]
    (d / "loop-one.yml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    uri = f"sqlite:///{d / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "BENTOML_HOME": str(d / "bentoml"),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_RUN_ID", None)
    exp_id = MlflowClient(uri, uri).create_experiment(L.EXPERIMENT, artifact_location=(d / "artifacts").as_uri())
    return {"dir": d, "uri": uri, "env": env, "experiment_id": exp_id, "config": d / "loop.yml",
            "one_recipe": d / "loop-one.yml"}


def _runs(client: MlflowClient, exp_id: str) -> tuple[list, list]:
    runs = client.search_runs([exp_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags], runs


@pytest.fixture(scope="module")
def first_loop(store, repo):
    """Cold start + 2 A/B days through `mlflow run` (the MLproject entry point)."""
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.run([mlflow_bin, "run", str(repo), "-e", "loop", "--env-manager", "local",
                           "--experiment-id", store["experiment_id"], "-P", "quick=true", "-P", "days=2",
                           "-P", f"config={store['config']}", "-P", f"workdir={store['dir'] / 'work'}"],
                          cwd=repo, env=store["env"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    client = MlflowClient(store["uri"], store["uri"])   # (its registry too: MLflow keeps one process-wide)
    parents, runs = _runs(client, store["experiment_id"])
    assert len(parents) == 1
    return client, parents[0], runs


def test_one_parent_run_and_a_child_run_per_day(first_loop):
    client, parent, runs = first_loop
    assert parent.info.status == "FINISHED"
    # `mlflow ui` opens the loop's experiment on runs and models, not on GenAI traces
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert parent.info.run_name == "loop 2d seed 424242 quick"
    assert parent.data.tags["loop_status"] == "finished"
    days = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
                  key=lambda r: int(r.data.tags["loop.day"]))
    assert [r.data.tags["botify.entry"] for r in days] == ["loop-day"] * 3
    assert [r.data.tags["loop.day"] for r in days] == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" for r in days)
    # named after what they did
    assert days[0].info.run_name.startswith("day 0: cold start")
    for r in days[1:]:
        assert r.info.run_name.startswith(f"day {r.data.tags['loop.day']}: v")
        assert r.info.run_name.endswith("promoted") or r.info.run_name.endswith("kept")
    # the steps nest under their day, never under the parent
    steps = {d.data.tags["loop.day"]: sorted(r.data.tags["botify.entry"] for r in runs
                                             if r.data.tags.get("mlflow.parentRunId") == d.info.run_id)
             for d in days}
    # day 0: the cold start, the bootstrap learner and the two challengers (each registers its lists)
    assert steps["0"] == ["collect"] + ["learn"] * 3
    assert steps["1"] == ["learn"] * 2                          # tomorrow's candidates
    assert steps["2"] == []                                     # the last day trains nothing


def test_metrics_are_indexed_by_day(first_loop):
    client, parent, _ = first_loop
    rid = parent.info.run_id

    def steps(key: str) -> list[int]:
        return sorted(m.step for m in client.get_metric_history(rid, key))

    assert steps("reward.random") == [0, 1, 2]
    assert steps("headroom.random") == [0, 1, 2]
    for key in ("reward.sessionaware.champion", "reward.sessionaware.challenger", "reward.contextual.champion",
                "reward.sessionaware.champion.lower", "headroom.sessionaware.champion",
                "model_effect.sessionaware", "model_effect.sessionaware.lower", "model_effect.sessionaware.upper",
                "model_effect.contextual", "promoted"):
        assert steps(key) == [1, 2], key
    assert steps("champion_version") == [0, 1, 2]
    for recipe in ("artist", "cooccurrence"):
        assert steps(f"offline.{recipe}.heldout.recall_at_50") == [0, 1]
    for lists in ("champion", "challenger"):
        assert steps(f"offline_served.{lists}.recall_at_50") == [1, 2]
    for h in client.get_metric_history(rid, "reward.sessionaware.champion"):
        lo = [m for m in client.get_metric_history(rid, "reward.sessionaware.champion.lower") if m.step == h.step]
        assert lo[0].value < h.value
    # the references the trend is read against
    m = parent.data.metrics
    assert m["reference.oracle.headroom_share"] == pytest.approx(1.0)
    assert 0 < m["reference.anchor_catalog.headroom_share"] < m["reference.anchor_ideal.headroom_share"] < 1


def test_champion_moves_as_the_days_decide_with_lineage_tags(first_loop):
    client, parent, runs = first_loop
    days = {int(r.data.tags["loop.day"]): r for r in runs
            if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    # day 0 bootstraps the first champion (the store had none)
    assert days[0].data.tags["champion_before"] == "none"
    assert days[0].data.tags["promotion"] == "bootstrap"
    boot = days[0].data.tags["champion_after"]
    # each day starts from the champion the day before left, and ends where its decision says
    for d in (1, 2):
        t = days[d].data.tags
        assert t["champion_before"] == days[d - 1].data.tags["champion_after"]
        promoted = t["promotion"] == "promoted"
        assert t["champion_after"] == (t["challenger"] if promoted else t["champion_before"])
        assert days[d].data.metrics["promoted"] == float(promoted)
        assert t["promotion_reason"]
        if d < 2:
            assert t["challenger_next"] == days[d + 1].data.tags["challenger"]
    # the course's lists cannot hold against the learners' when SessionAware follows them: day 1 promotes
    assert days[1].data.tags["promotion"] == "promoted" and days[1].data.tags["champion_after"] != boot
    assert _champion(client) == days[2].data.tags["champion_after"]
    assert _champion(client, tracking.MODEL_NAME) is None, "a quick loop never moves the default world's champion"

    # lineage: every version the loop registered says what it was trained on and against what
    versions = {str(v.version): v for v in client.search_model_versions(f"name='{MODEL}'")}
    assert len(versions) == 5                    # bootstrap, two candidates on day 0, two on day 1
    for v in versions.values():
        t = v.tags
        assert t["loop_run_id"] == parent.info.run_id
        assert t["dataset_digest"] and t["dataset_digest"] == client.get_run(v.run_id).data.tags["dataset_digest"]
        assert {"days_trained_on", "parent_version", "recipe", "role"} <= set(t)
    assert versions[boot].tags["role"] == "bootstrap" and versions[boot].tags["parent_version"] == "none"
    assert versions[boot].tags["days_trained_on"] == "0"
    day1_challenger = versions[days[1].data.tags["challenger"]].tags
    assert day1_challenger["days_trained_on"] == "0" and day1_challenger["parent_version"] == boot
    day2_challenger = versions[days[2].data.tags["challenger"]].tags
    assert day2_challenger["days_trained_on"] == "0,1"              # the window grew by day 1's log
    assert day2_challenger["parent_version"] == days[1].data.tags["champion_after"]
    assert versions[days[1].data.tags["champion_after"]].tags["promoted_on_day"] == "1"


def test_report_trend_and_description(first_loop, store):
    client, parent, _ = first_loop
    rid = parent.info.run_id
    names = {Path(f.path).name for f in client.list_artifacts(rid, "report")}
    assert {"report.md", "trend.png", "trend.csv", "offline.csv", "agreement.csv"} <= names
    local = Path(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="report", tracking_uri=store["uri"]))
    report = (local / "report.md").read_text()
    head = parent.data.tags["mlflow.note.content"]
    assert head.startswith("2 of 2 days: @champion v") and f"**{head}**" in report
    assert "anchor_catalog" in report and "Goal:" in report and "### iv. Every day's decision" in report
    assert "### vi. Which offline figure tracks served reward" in report
    # the candidates: both recipes scored on held-out listeners each training day, one chosen
    offline = pd.read_csv(local / "offline.csv")
    assert sorted(offline["candidate"]) == ["artist", "artist", "cooccurrence", "cooccurrence"]
    assert offline.groupby("day")["selected"].sum().tolist() == [1, 1]
    key = "heldout.artist_recall@50"   # loop.yml select.metric
    for _, g in offline.groupby("day"):
        assert g.loc[g["selected"], key].iloc[0] == g[key].max()
    trend = pd.read_csv(local / "trend.csv")
    assert sorted(trend["day"].unique()) == [0, 1, 2]
    ab = trend[trend["day"] > 0]
    assert set(ab["label"]) == {"Random (C)", "Contextual × champion", "Contextual × challenger",
                                "SessionAware × champion", "SessionAware × challenger"}
    assert (ab["lower"] < ab["mean"]).all() and (ab["mean"] < ab["upper"]).all()
    # Random is the floor of its own day's headroom
    assert trend.loc[trend["label"] == "Random (C)", "headroom"].abs().max() < 1e-9


def _service_pids(config: Path) -> list[int]:
    """Processes started with BOTIFY_CONFIG=config: exactly this day's service (and its workers)."""
    needle = f"BOTIFY_CONFIG={config}\0".encode()
    pids = []
    for env_file in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in env_file.read_bytes():
                pids.append(int(env_file.parent.name))
        except OSError:
            continue
    return pids


def test_a_failed_day_never_moves_the_champion(first_loop, store, repo):
    client, _, _ = first_loop
    before = _champion(client)
    assert before is not None
    work = store["dir"] / "work-killed"
    proc = subprocess.Popen([sys.executable, "-m", "training.jobs.loop", "--quick", "--days", "2", "--workdir", str(work),
                             "--config", str(store["one_recipe"])],
                            cwd=repo, env=store["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed: list[int] = []
    deadline = time.monotonic() + 240
    try:
        # wait for day 1's service to be serving the simulator, then kill it
        while time.monotonic() < deadline and proc.poll() is None and not killed:
            for cfg in work.glob("*/day1/service.yml"):
                logs = list((cfg.parent / "logs").glob("events-*.jsonl"))
                if logs and logs[0].stat().st_size > 0:
                    for pid in _service_pids(cfg):
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
            time.sleep(0.1)
        out, err = proc.communicate(timeout=max(5.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killed, "day 1's service was never seen serving: " + err[-3000:]
    assert proc.returncode == 2, out[-2000:] + err[-3000:]
    assert "day 1 failed" in err and "@champion moved only by the days that completed" in err

    assert _champion(client) == before
    parents, runs = _runs(client, store["experiment_id"])
    (run,) = [p for p in parents if p.data.tags.get("loop_status") == "failed"]
    assert run.info.status == "FAILED"
    days = {r.data.tags["loop.day"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == run.info.run_id}
    assert days["0"].info.status == "FINISHED" and days["1"].info.status == "FAILED"
    # the second loop started from the registry's champion (same world): no bootstrap model
    assert days["0"].data.tags["promotion"] == "not promoted"
    assert "started from the registry" in days["0"].data.tags["promotion_reason"]
    assert "promotion" not in days["1"].data.tags or days["1"].data.tags["promotion"] != "promoted"
    # the report of the days done is still there, and says the loop stopped
    assert "STOPPED on day 1" in run.data.tags["mlflow.note.content"]
    # and nothing of day 1's service is left
    assert all(not _service_pids(cfg) for cfg in work.glob("*/day1/service.yml"))


def test_the_quick_config_is_the_loop_the_tests_ran():
    """The quick settings are what the test above relies on (a change there must show here)."""
    cfg = load_loop(quick=True, days=2)
    assert cfg.register == MODEL and cfg.promotion.deploy is None and cfg.world.endswith("small.yml")
    assert [s.name for s in cfg.challengers] == ["artist", "cooccurrence"] and cfg.bootstrap.name == "course"
    assert cfg.policy_names == ["Contextual", "SessionAware"] and cfg.promotion.policy == "SessionAware"
