"""The main job end to end: `mlflow run . -e experiment -P quick=true` over HTTP on the small world.

It runs the real thing (the launcher, the world step, day 1 through the BentoML service,
two trainings, the i2i exports, day 2 through the service, the oracle run, the analysis,
the promotion) against a throwaway MLflow store, then checks what a user of the run
relies on: the table's structure, the SRM and Holm columns, the artifacts, the child
runs, and that the promotion decision in the registry is the one the table implies.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from training.ab import tables as T
from training.ab import users as U
from training.jobs import experiment as E
from training.ab import play
from training.ab.day import DaySpec, Service, play_day
from training.registry import promotion
from training.jobs import configs
from training.registry import tracking
from training.errors import JobError

pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> tuple[dict, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_RUN_ID", None)
    return env, uri


def _experiment(uri: str, tmp_path: Path, name: str) -> str:
    return MlflowClient(uri, uri).create_experiment(name, artifact_location=(tmp_path / "artifacts").as_uri())


def _champion(client: MlflowClient, name: str = tracking.MODEL_NAME) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, tracking.CHAMPION).version)
    except MlflowException:
        return None


def test_quick_experiment_over_http(small_world, repo, tmp_path, experiment_config):
    env, uri = _env(tmp_path)
    exp_id = _experiment(uri, tmp_path, "e2e")
    arms_yml = experiment_config()      # the default config, its work dir in tmp_path
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.run([mlflow_bin, "run", str(repo), "-e", "experiment", "--env-manager", "local",
                           "--experiment-id", exp_id, "-P", "quick=true", "-P", f"arms={arms_yml}"],
                          cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    client = MlflowClient(uri, uri)
    runs = client.search_runs([exp_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    rid = parent.info.run_id
    assert parent.info.status == "FINISHED"
    children = sorted(r.data.tags.get("botify.entry", "") for r in runs if r.data.tags.get("mlflow.parentRunId") == rid)
    assert children == ["collect", "recommend", "recommend", "train", "train"]

    # params: config, seeds, counts
    p = parent.data.params
    assert p["quick_mode"] == "True" and p["transport"] == "http" and p["day1.simulator"] == "--seed 424242 --day 1"
    assert p["arm.T6"] == "session_aware" and p["arm.T5"] == "session_aware_control" and p["arm.C"] == "random"

    # artifacts
    arts = {f.path for f in client.list_artifacts(rid)}
    assert {"report", "event_log", "i2i", "config", "references", "effects.json", "factorial.json"} <= arts
    report = {Path(f.path).name for f in client.list_artifacts(rid, "report")}
    assert {"effects.csv", "effects.md", "effects.png", "report.md", "users.csv", "factorial.csv", "factorial.md",
            "factorial.png", "capped.csv"} <= report
    assert any(f.path.endswith(".jsonl") for f in client.list_artifacts(rid, "event_log"))
    assert [Path(f.path).name for f in client.list_artifacts(rid, "i2i")] == ["i2i-treatment.jsonl"]

    local = Path(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="report", tracking_uri=uri))
    table = pd.read_csv(local / "effects.csv")
    assert list(table.columns) == list(T.TABLE_COLUMNS)
    arms = ["T1", "T2", "T3", "T4", "T5", "T6"]
    vs_c = table[table["control"] == "C"]
    assert sorted(vs_c["treatment"].unique()) == arms
    assert len(vs_c) == len(arms) * len(U.METRICS) and set(vs_c["metric"]) == set(U.METRICS)
    contrasts = table[table["control"] != "C"]
    assert set(zip(contrasts["treatment"], contrasts["control"])) == {("T6", "T3")}     # the seed's headline
    # SRM: one test per experiment, on every row; Holm: beside the raw p-value, never below it
    assert table["srm_p_value"].nunique() == 1 and table["srm_p_value"].between(0, 1).all()
    assert (table["valid"] == table["srm_ok"]).all()
    assert (table["p_holm"] >= table["p_value"] - 1e-12).all()
    assert (table["significant_holm"] <= table["significant"]).all()
    # the ratio CI: its verdict is the course's, and it contains the point estimate
    assert (table["significant_ratio"] == table["significant"]).all()
    assert ((table["lower_ratio"] <= table["effect"] + 1e-9) & (table["effect"] <= table["upper_ratio"] + 1e-9)).all()
    # the 2x2: model effect per policy, policy effect per list level, interaction, headline, per metric
    factorial = pd.read_csv(local / "factorial.csv")
    assert list(factorial.columns) == list(T.FACTORIAL_COLUMNS)
    prim = factorial[factorial["metric"] == "mean_time_per_session"]
    assert list(zip(prim["family"], prim["given"].fillna(""))) == [
        ("model", "Contextual"), ("model", "SessionAware"), ("policy", "control"), ("policy", "treatment"),
        ("headline", ""), ("interaction", "")]
    by = prim.set_index(["family", prim["given"].fillna("")])
    assert tuple(by.loc[("model", "SessionAware"), ["treatment", "control"]]) == ("T6", "T5")
    headline_row = table[(table["treatment"] == "T6") & (table["control"] == "T3") &
                         (table["metric"] == "mean_time_per_session")].iloc[0]
    assert by.loc[("headline", ""), "effect"] == pytest.approx(headline_row["effect"])
    # capped sessions per arm: every day-2 episode counted once
    capped = pd.read_csv(local / "capped.csv")
    assert list(capped["arm"]) == ["C", *arms] and capped["capped_share"].between(0, 1).all()
    assert capped["episodes"].sum() == int(p["episodes_day2"])    # the report names the decision
    text = (local / "report.md").read_text()
    assert "### iii. Results" in text and "**Decision:**" in text and "**Promotion rule:**" in text
    assert "anchor_catalog (anchor policy, catalog-only lists), simulator reference" in text
    assert "| policy / lists |" in text and "capped sessions" in text

    # metrics: per arm and metric, the oracle, the headroom
    m = parent.data.metrics
    for key in ("T6_SessionAware-treatment.mean_time_per_session.effect",
                "T6_SessionAware-treatment.mean_time_per_session.lower",
                "T6_SessionAware-treatment.mean_time_per_session.upper_ratio",
                "T6_vs_T3.mean_time_per_session.p_holm", "oracle.mean_time_per_session",
                "headroom.SessionAware-treatment", "srm_p_value", "users.C", "users.T6",
                "2x2_model_SessionAware.mean_time_per_session.effect",
                "2x2_model_SessionAware.mean_time_per_session.p_holm",
                "2x2_policy_control.mean_time_per_session.lower_ratio",
                "2x2_interaction.mean_time_per_session.upper_ratio",
                "2x2_headline.mean_time_per_session.effect",
                "capped_share.C_Random", "capped_share.T6_SessionAware-treatment", "oracle.capped_share"):
        assert key in m, key
    assert m["oracle.mean_time_per_session"] > m["T6_SessionAware-treatment.mean_time_per_session.control_mean"]
    # the simulator's references on the same sessions: the metadata-only rule below the ideal lists
    assert m["reference.anchor_catalog.headroom"] < m["reference.anchor_ideal.headroom"] < 1.0

    # promotion: what the table implies, and nothing else
    cfg = configs.load_experiment(quick=True)
    should, reason = promotion.decide(factorial, cfg.promotion.rule())
    treatment_version = p["model.treatment.version"]
    assert parent.data.tags["promotion"] == ("promoted" if should else "not promoted")
    small_model = cfg.register
    assert small_model != tracking.MODEL_NAME and p["model.registered_name"] == small_model
    # promoted: the treatment; not: the control becomes the first champion (the registry had none)
    assert _champion(client, small_model) == (treatment_version if should else p["model.control.version"])
    assert parent.data.tags.get("champion_bootstrap") == (None if should else p["model.control.version"])
    assert _champion(client) is None, "a quick run must never move the default world's champion"
    assert reason in parent.data.tags["promotion_reason"]
    assert "decided by the model effect (treatment vs control lists under SessionAware)" in reason
    assert parent.data.tags["promotion_rule"] == promotion.rule(cfg.promotion.rule())

    # the same experiment in-process: the same table, up to the latency rows and columns
    proc = subprocess.run([sys.executable, "-m", "training.jobs.experiment", "--quick", "--in-process", "--arms", str(arms_yml)],
                          cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (inproc,) = [r for r in client.search_runs([client.get_experiment_by_name(E.EXPERIMENT).experiment_id])
                 if "mlflow.parentRunId" not in r.data.tags]
    assert inproc.data.params["transport"] == "in-process"
    other = pd.read_csv(Path(mlflow.artifacts.download_artifacts(
        run_id=inproc.info.run_id, artifact_path="report/effects.csv", tracking_uri=uri)))
    keep = ~table["metric"].isin(U.LATENCY_METRICS)
    pd.testing.assert_frame_equal(table[keep].reset_index(drop=True),
                                  other[~other["metric"].isin(U.LATENCY_METRICS)].reset_index(drop=True))
    other_f = pd.read_csv(Path(mlflow.artifacts.download_artifacts(
        run_id=inproc.info.run_id, artifact_path="report/factorial.csv", tracking_uri=uri)))
    keep_f = ~factorial["metric"].isin(U.LATENCY_METRICS)
    pd.testing.assert_frame_equal(factorial[keep_f].reset_index(drop=True),
                                  other_f[~other_f["metric"].isin(U.LATENCY_METRICS)].reset_index(drop=True))


def test_missing_model_alias_fails_clearly_and_promotes_nothing(small_world, repo, tmp_path, experiment_config):
    env, uri = _env(tmp_path)
    _experiment(uri, tmp_path, E.EXPERIMENT)
    models = yaml.safe_load((repo / configs.EXPERIMENT_CONFIG).read_text())["models"]
    bad = experiment_config(models={**models, "control": {"ref": "no-such-alias"}})
    proc = subprocess.run([sys.executable, "-m", "training.jobs.experiment", "--arms", str(bad), "--quick",
                           "--in-process"], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no-such-alias" in proc.stderr and "nothing promoted" in proc.stderr
    client = MlflowClient(uri, uri)
    (run,) = [r for r in client.search_runs([client.get_experiment_by_name(E.EXPERIMENT).experiment_id])
              if "mlflow.parentRunId" not in r.data.tags]
    assert run.info.status == "FAILED" and run.data.tags["promotion"] == "not promoted"
    assert "no-such-alias" in run.data.tags["promotion_reason"]
    assert _champion(client) is None and _champion(client, configs.load_experiment(bad, quick=True).register) is None


def test_port_taken_is_a_clear_error_and_leaves_no_service(small_world, repo, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        spec = DaySpec("day 2", tmp_path / "day", "sim/config/small.yml", 1, 1, 5,
                       Service({"random": {"kind": "random"}}, [{"name": "X", "arms": {"C": "random"}}], 1), port=port)
        with pytest.raises(JobError, match=f"day 2 failed: .*port {port} is already in use"):
            play_day(spec)
    cfg = tmp_path / "day" / "service.yml"
    # nothing was started: no process carries this service config
    mine = []
    for env_file in Path("/proc").glob("[0-9]*/environ"):
        try:
            if str(cfg).encode() in env_file.read_bytes():
                mine.append(env_file.parent.name)
        except OSError:
            continue
    assert mine == []


def test_simulator_that_loses_the_service_is_a_clear_error(repo, small_world, tmp_path):
    with socket.socket() as s:        # a port nobody listens on: the service is gone
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(JobError) as err:
        play.simulate(play.SimCommand(config=repo / "sim" / "config" / "small.yml", episodes=5, seed=1,
                                      stats=tmp_path / "stats.csv", recommender="remote",
                                      url=f"http://127.0.0.1:{port}"), "day 2", tmp_path / "sim.log")
    msg = str(err.value)
    assert "day 2 failed" in msg and "lost the connection" in msg and str(port) in msg
