"""The runner end to end on the small world: single, multi, days, the stats file, the
in-process agent's protocol, and clear errors for bad input."""
from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sim.run import STATS_HEADER, main

SMALL = "sim/config/small.yml"


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == STATS_HEADER
        return list(reader)


def run(tmp_path, name, *args, mode=("single",), recommender="dummy", episodes=120, seed=7):
    stats = tmp_path / f"{name}.csv"
    code = main(["--config", SMALL, "--episodes", str(episodes), "--stats", str(stats),
                 *args, *mode, "--recommender", recommender, "--seed", str(seed)])
    assert code == 0
    return stats


def test_single_run_writes_the_contracts_stats_and_a_daily_summary(small_world, tmp_path, capsys):
    stats = run(tmp_path, "a", "--days", "2")
    out = capsys.readouterr().out
    assert "day 1: 120 episodes | reward " in out and "day 2: 120 episodes" in out and "±" in out
    rows = _rows(stats)
    assert len(rows) == 240
    assert [r["day"] for r in rows] == ["1"] * 120 + ["2"] * 120
    assert [int(r["episode"]) for r in rows[:120]] == list(range(120))
    for r in rows:
        steps, reward, time = int(r["steps"]), float(r["reward"]), float(r["time"])
        assert steps >= 1 and 0.0 <= reward <= steps
        assert time == pytest.approx(1.0 + reward)
        assert r["truncated"] in ("0", "1")
    assert len({r["user"] for r in rows}) > 100
    # days differ (fresh seeds per day)
    assert [r["user"] for r in rows[:120]] != [r["user"] for r in rows[120:]]


def test_same_seed_same_rows_and_multi_plays_the_same_sessions(small_world, tmp_path):
    a = run(tmp_path, "a", "--days", "2")
    b = run(tmp_path, "b", "--days", "2")
    m = run(tmp_path, "m", "--days", "2", mode=("multi", "--processes", "2"))
    other = run(tmp_path, "o", "--days", "2", seed=8)
    assert a.read_text() == b.read_text() == m.read_text()
    assert other.read_text() != a.read_text()


def test_the_seeds_command_line_shape_works_from_the_repo_root(small_world, repo, tmp_path):
    """Options after the mode, as in the seed's `single --recommender remote --seed 424242`."""
    stats = tmp_path / "s.csv"
    p = subprocess.run([sys.executable, "-m", "sim.run", "--episodes", "60", "--config", SMALL,
                        "single", "--recommender", "oracle", "--seed", "424242", "--stats", str(stats)],
                       cwd=repo, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "day 1: 60 episodes" in p.stdout
    assert len(_rows(stats)) == 60


def test_the_oracle_is_an_upper_bound_of_random(small_world, tmp_path):
    rnd = _rows(run(tmp_path, "r", episodes=300))
    orc = _rows(run(tmp_path, "o", recommender="oracle", episodes=300))
    start = lambda rows: [(r["user"], r["first_track"]) for r in rows]
    assert start(rnd) == start(orc)              # same seed, same sessions
    mean = lambda rows: sum(float(r["reward"]) for r in rows) / len(rows)
    assert mean(orc) > 4 * mean(rnd)


FACTORY = textwrap.dedent('''
    class Recorder:
        """Recommends track+1 and records the protocol."""
        calls = []
        def __init__(self, arg):
            self.arg = arg
        def recommend_next(self, user, prev_track, prev_time):
            Recorder.calls.append(("next", user, prev_track, prev_time))
            return (prev_track + 1) % 2000
        def end_session(self, user, last_track, last_time):
            Recorder.calls.append(("last", user, last_track, last_time))

    def build(arg):
        return Recorder(arg)

    def not_a_recommender(arg):
        return object()
''')


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "fake_recs.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("fake_recs", None)
    yield
    sys.modules.pop("fake_recs", None)


def test_inprocess_agent_follows_the_recommender_protocol(small_world, tmp_path, factory_module):
    stats = tmp_path / "s.csv"
    assert main(["--config", SMALL, "--episodes", "20", "--stats", str(stats), "single",
                 "--recommender", "inprocess", "--factory", "fake_recs:build", "--factory-arg", "cfg.yml"]) == 0
    import fake_recs
    calls = fake_recs.Recorder.calls
    rows = _rows(stats)
    sessions, current = [], []
    for c in calls:
        current.append(c)
        if c[0] == "last":
            sessions.append(current)
            current = []
    assert not current and len(sessions) == len(rows) == 20
    for s, row in zip(sessions, rows):
        nexts, last = s[:-1], s[-1]
        assert nexts[0][3] == 1.0                        # the first track counts as fully played
        assert {c[1] for c in s} == {int(row["user"])}
        assert len(nexts) == int(row["steps"])
        for prev, nxt in zip(nexts, nexts[1:] + [last]):
            assert nxt[2] == (prev[2] + 1) % 2000          # each answer is then played
        assert sum(c[3] for c in nexts[1:]) + last[3] == pytest.approx(float(row["reward"]))


@pytest.mark.parametrize("args, message", [
    (["single", "--recommender", "nope"], "unknown recommender 'nope'"),
    (["single", "--recommender", "inprocess"], "needs --factory module:function"),
    (["single", "--recommender", "inprocess", "--factory", "nomodule_xyz:f"], "cannot import module 'nomodule_xyz'"),
    (["single", "--recommender", "inprocess", "--factory", "fake_recs:missing"], "has no function 'missing'"),
    (["single", "--recommender", "inprocess", "--factory", "fake_recs:not_a_recommender",
      "--factory-arg", "x"], "without recommend_next and end_session"),
    (["--episodes", "0", "single", "--recommender", "dummy"], "--episodes must be >= 1"),
])
def test_bad_agent_and_arguments_are_clear_errors(small_world, capsys, factory_module, args, message):
    assert main(["--config", SMALL, *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_config_names_the_key_and_the_fix(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text(Path(SMALL).read_text().replace("budget: 5", "budget: five"))
    assert main(["--config", str(bad), "single", "--recommender", "dummy"]) == 2
    err = capsys.readouterr().err
    assert "`session.budget` must be an integer" in err and "'five'" in err
    assert main(["--config", str(tmp_path / "none.yml"), "single", "--recommender", "dummy"]) == 2
    assert "not found" in capsys.readouterr().err
    bad.write_text("world: [unclosed")
    assert main(["--config", str(bad), "single", "--recommender", "dummy"]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_missing_world_says_how_to_generate_it(tmp_path, capsys):
    cfg = tmp_path / "c.yml"
    cfg.write_text(Path(SMALL).read_text().replace("dir: data/world-small", f"dir: {tmp_path / 'w'}"))
    assert main(["--config", str(cfg), "single", "--recommender", "dummy"]) == 2
    err = capsys.readouterr().err
    assert "is missing public/tracks.json" in err and f"python -m sim.world --config" in err
    assert "Traceback" not in err


def test_world_cli_reports_bad_config_without_traceback(tmp_path, repo):
    bad = tmp_path / "bad.yml"
    bad.write_text(Path(repo / SMALL).read_text().replace("tracks: 2000", "tracks: -3"))
    p = subprocess.run([sys.executable, "-m", "sim.world", "--config", str(bad)], cwd=repo,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "`world.tracks` must be an integer >= 1" in p.stderr and "Traceback" not in p.stderr


def test_the_oracle_plays_the_exact_best_expected_track(small_world):
    """Its choice is the argmax of the listening time over the whole catalog, every step."""
    from sim.agents import OracleAgent
    from sim.config import load_config
    from sim.envs import ListenerEnv
    from sim.world import World
    import numpy as np
    cfg = load_config(SMALL)
    w = World.from_config(cfg)
    env = ListenerEnv(w, cfg.session)
    oracle = OracleAgent(env, candidates=50)      # small candidate set: exercises the fallback
    env.reset(seed=2)
    checked = 0
    for _ in range(15):
        obs, info = env.reset()
        track, t, done = obs["prev_track"], 1.0, False
        while not done:
            choice = oracle.recommend_next(obs["user"], track, t)
            u = obs["user"]
            raw = 1 / (1 + np.exp(-(w.embeddings64 @ env.session_embedding - w.consume_bias[u])
                                  * w.consume_sharpness[u]))
            plays = np.array([env.artist_plays.get(a, 0) for a in range(len(w.artist_names))])
            times = np.round(raw * 0.8 ** plays[w.track_artist], 2)
            times[list(env.played)] = 0.0
            assert env.listen_time(choice) == times.max()
            obs, t, term, trunc, _ = env.step(choice)
            track, done = choice, term or trunc
            checked += 1
        oracle.end_session(obs["user"], track, t)
    assert checked > 60


def test_prompt_asks_before_each_new_day(small_world, tmp_path, monkeypatch, capsys):
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO("y\nn\n"))
    stats = tmp_path / "p.csv"
    assert main(["--config", SMALL, "--episodes", "10", "--prompt", "--stats", str(stats),
                 "single", "--recommender", "dummy"]) == 0
    out = capsys.readouterr().out
    assert out.count("start a new day?") == 2 and "day 2:" in out and "day 3:" not in out
    assert {r["day"] for r in _rows(stats)} == {"1", "2"}


def test_truncated_sessions_are_marked_and_stop_at_max_steps(small_world, tmp_path):
    rows = _rows(run(tmp_path, "o", recommender="oracle", episodes=200))
    truncated = [r for r in rows if r["truncated"] == "1"]
    assert truncated and all(int(r["steps"]) == 30 for r in truncated)
    assert all(int(r["steps"]) <= 30 for r in rows)


def test_console_agent_lets_a_person_choose(small_world):
    import io
    from sim.agents import ConsoleAgent
    from sim.config import load_config
    from sim.world import World
    w = World.from_config(load_config(SMALL))
    word = w.titles[7].split()[0]
    out = io.StringIO()
    agent = ConsoleAgent(w, seed=0, stdin=io.StringIO(f"/{word}\nabc\n99999\n7\n\n"), stdout=out)
    assert agent.recommend_next(3, 5, 1.0) == 7
    text = out.getvalue()
    assert w.titles[5] in text and "matches" in text and "'abc' is not a track id" in text
    assert "track 99999 is not in the catalog" in text
    assert 0 <= agent.recommend_next(3, 7, 0.5) < w.n_tracks      # Enter: a random track


def test_multi_reports_an_agent_that_cannot_be_built_instead_of_hanging(small_world, capsys):
    assert main(["--config", SMALL, "--episodes", "20", "multi", "--processes", "2",
                 "--recommender", "inprocess", "--factory", "nomodule_xyz:f"]) == 2
    assert "cannot import module 'nomodule_xyz'" in capsys.readouterr().err
