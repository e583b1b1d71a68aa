"""The paired judge: every session is named by (seed, day, episode), so different
recommenders on the same seed meet the same users on the same first tracks in every
session; day D alone is the last day of D days; the paired comparison's arithmetic."""
from __future__ import annotations

import csv
import json
import sys
import textwrap
from pathlib import Path

import pytest

from sim.calibrate import main as calibrate
from sim.judge import JudgeError, figures, judge, main as judge_cli, paired, read_stats
from sim.run import Session, main as run

SMALL = "sim/config/small.yml"

# Two recommenders that answer differently (so sessions last differently and the old
# block streams drifted apart after a block's first session), each recording the
# session starts it is shown.
FACTORY = textwrap.dedent('''
    class Stepper:
        def __init__(self, stride):
            self.stride, self.starts, self.new = int(stride), [], True
        def recommend_next(self, user, prev_track, prev_time):
            if self.new:
                self.starts.append((user, prev_track))
                self.new = False
            return (prev_track + self.stride) % 2000
        def end_session(self, user, last_track, last_time):
            self.new = True

    BUILT = []

    def build(stride):
        BUILT.append(Stepper(stride))
        return BUILT[-1]
''')


@pytest.fixture
def steppers(tmp_path, monkeypatch):
    (tmp_path / "paired_recs.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("paired_recs", None)
    import paired_recs
    yield paired_recs
    sys.modules.pop("paired_recs", None)


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_two_recommenders_on_the_same_seed_start_the_same_users_on_the_same_tracks_in_every_session(
        small_world, tmp_path, steppers):
    starts, stats = [], []
    for stride in ("1", "977"):
        out = tmp_path / f"s{stride}.csv"
        assert run(["--config", SMALL, "--episodes", "300", "--seed", "11", "--stats", str(out), "single",
                    "--recommender", "inprocess", "--factory", "paired_recs:build", "--factory-arg", stride]) == 0
        starts.append(steppers.BUILT[-1].starts)
        stats.append(_rows(out))
    assert len(starts[0]) == len(starts[1]) == 300
    assert [r["steps"] for r in stats[0]] != [r["steps"] for r in stats[1]]   # they did play differently
    assert starts[0] == starts[1]
    assert [(int(r["user"]), int(r["first_track"])) for r in stats[0]] == starts[0]


def test_every_reference_and_any_agent_play_the_same_sessions(small_world):
    """The calibration's references through the judge: identical (user, first track) in
    every session, whether the agent draws random numbers of its own or not."""
    from sim.agents import DummyAgent, OracleAgent
    from sim.baselines import SessionAnchorCatalog, StickyArtist
    from sim.config import load_config
    from sim.envs import ListenerEnv
    from sim.world import World
    cfg = load_config(SMALL)
    w = World.from_config(cfg)
    env = ListenerEnv(w, cfg.session)
    agents = [DummyAgent(w.n_tracks), StickyArtist(w), OracleAgent(env), SessionAnchorCatalog(w)]
    played = [judge(env, a, 400, seed=3, day=2) for a in agents]
    keys = [[(r.day, r.episode, r.user, r.first_track) for r in rows] for rows in played]
    assert all(k == keys[0] for k in keys) and len(set(keys[0])) == 400
    assert len({tuple(r.steps for r in rows) for rows in played}) == len(agents)
    # a random agent draws per session too: its sessions do not depend on which come before
    assert judge(env, DummyAgent(w.n_tracks), 400, seed=3, day=2)[150:] == \
        judge(env, DummyAgent(w.n_tracks), 400, seed=3, day=2)[150:]
    from sim.run import play_sessions
    assert play_sessions(env, DummyAgent(w.n_tracks), 3, 2, 150, 250) == played[0][150:]


@pytest.mark.parametrize("processes", ["2", "3"])
def test_single_and_multi_play_the_same_rows(small_world, tmp_path, processes):
    a, m = tmp_path / "a.csv", tmp_path / "m.csv"
    args = ["--config", SMALL, "--episodes", "170", "--days", "2", "--seed", "5"]
    assert run([*args, "--stats", str(a), "single", "--recommender", "dummy"]) == 0
    assert run([*args, "--stats", str(m), "multi", "--processes", processes, "--recommender", "dummy"]) == 0
    assert a.read_text() == m.read_text()


def test_day_d_alone_plays_the_last_day_of_d_days(small_world, tmp_path):
    days, day = tmp_path / "days.csv", tmp_path / "day.csv"
    assert run(["--config", SMALL, "--episodes", "120", "--seed", "9", "--days", "3", "--stats", str(days),
                "single", "--recommender", "dummy"]) == 0
    assert run(["--config", SMALL, "--episodes", "120", "--seed", "9", "--day", "3", "--stats", str(day),
                "multi", "--processes", "2", "--recommender", "dummy"]) == 0
    last = [r for r in _rows(days) if r["day"] == "3"]
    assert len(last) == 120 and _rows(day) == last
    # the calibration's Random on day 3 is the same sessions, played by the same agent
    assert calibrate(["--config", SMALL, "--episodes", "120", "--seed", "9", "--day", "3", "--max-steps", "30",
                      "--sessions", str(tmp_path / "refs"), "--json", str(tmp_path / "c.json")]) in (0, 1)
    assert read_stats(tmp_path / "refs" / "random.csv") == read_stats(day)
    assert json.loads((tmp_path / "c.json").read_text())["day"] == 3


def test_bad_day_is_a_clear_error(small_world, capsys):
    assert run(["--config", SMALL, "--day", "0", "single", "--recommender", "dummy"]) == 2
    assert "--day must be >= 1" in capsys.readouterr().err


def _session(episode: int, user: int, time: float) -> Session:
    return Session(1, episode, user, 100 + episode, 3, round(time - 1.0, 2), time, 0)


def test_the_paired_difference_and_its_standard_error_by_hand():
    a = [_session(0, 1, 2.0), _session(1, 1, 3.0), _session(2, 2, 5.0), _session(3, 3, 1.0)]
    b = [_session(0, 1, 3.0), _session(1, 1, 3.0), _session(2, 2, 8.0), _session(3, 3, 2.0)]
    got = paired(a, b, random=2.0, oracle=12.0)
    # per session: d = 1, 0, 3, 1; mean 1.25; sd = sqrt(4.75 / 3); se = sd / 2
    assert got["sessions"] == 4 and got["time_diff"] == pytest.approx(1.25)
    assert got["time_diff_se"] == pytest.approx((4.75 / 3) ** 0.5 / 2)
    # per user: 0.5, 3, 1; mean 1.5; sd = sqrt(3.5 / 2); se = sd / sqrt(3)
    assert got["users"] == 3 and got["user_diff"] == pytest.approx(1.5)
    assert got["user_diff_se"] == pytest.approx((3.5 / 2) ** 0.5 / 3 ** 0.5)
    assert got["user_diff"] == pytest.approx(figures(b)["time_per_session"] - figures(a)["time_per_session"])
    # as a share of the headroom: 1.5 / (12 - 2)
    assert got["headroom_diff"] == pytest.approx(0.15)
    assert got["headroom_diff_se"] == pytest.approx(got["user_diff_se"] / 10)
    with pytest.raises(JudgeError, match="not the same sessions"):
        paired(a, b[:3])
    with pytest.raises(JudgeError, match="first difference at row 2"):
        paired(a, b[:2] + [_session(2, 5, 8.0), b[3]])


def test_the_judge_command_pairs_two_runs_with_the_references(small_world, tmp_path, capsys):
    common = ["--config", SMALL, "--episodes", "200", "--seed", "4", "--day", "2"]
    assert run([*common, "--stats", str(tmp_path / "a.csv"), "single", "--recommender", "dummy"]) == 0
    assert run([*common, "--stats", str(tmp_path / "b.csv"), "single", "--recommender", "oracle"]) == 0
    calibrate([*common, "--max-steps", "30", "--sessions", str(tmp_path / "refs")])
    capsys.readouterr()
    assert judge_cli([str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--references", str(tmp_path / "refs")]) == 0
    got = json.loads(capsys.readouterr().out)
    # Random against the Oracle on the same sessions is the whole headroom
    assert got["headroom_diff"] == pytest.approx(1.0) and got["sessions"] == 200
    (tmp_path / "bad.csv").write_text("day,episode\n1,0\n")
    assert judge_cli([str(tmp_path / "a.csv"), str(tmp_path / "bad.csv")]) == 2
    assert "is not a simulator stats file" in capsys.readouterr().err
    assert judge_cli([str(tmp_path / "a.csv"), str(tmp_path / "none.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_sessions_stream_depends_on_its_name_alone():
    from sim.seeds import AGENT, SessionStreams
    s = SessionStreams(7, 2)
    first = s.at(5).random(40)
    s.at(9).random(3)
    assert (s.at(5).random(40) == first).all()                              # re-reachable, any order
    assert (SessionStreams(7, 2).at(5).random(40) == first).all()
    for other in (s.at(6), SessionStreams(7, 3).at(5), SessionStreams(8, 2).at(5), SessionStreams(7, 2, AGENT).at(5)):
        assert not (other.random(40) == first).any()
    with pytest.raises(ValueError, match="kind"):
        SessionStreams(7, 2, kind=5)
