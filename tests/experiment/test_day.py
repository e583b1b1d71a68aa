"""One A/B day, the same for every job: the seed rule, the simulator's command lines, and a
played day (in-process, the small world) with its references on its own sessions."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.ab.day import DaySpec, References, Service, SimDay, play_day, simulator_day
from training.ab.play import CalibrateCommand, SimCommand
from training.jobs import loop_steps
from training.jobs.configs import load_loop

SMALL = "sim/config/small.yml"


def test_one_seed_rule_for_every_job(tmp_path):
    """A job's n-th day is the simulator's day n of the job's seed (`simulator_day`): the
    experiment's days 1 and 2 and the loop's day d (its (d + 1)-th) go through it, so equal
    days of equal seeds are equal sessions whichever job plays them."""
    assert [simulator_day(424242, n) for n in (1, 2, 3)] == [SimDay(424242, 1), SimDay(424242, 2),
                                                            SimDay(424242, 3)]
    spec = DaySpec("day 2", tmp_path, SMALL, 424242, 2, 10, Service({}, []))
    assert spec.sim == simulator_day(424242, 2) and str(spec.sim) == "--seed 424242 --day 2"
    st = loop_steps.LoopState(load_loop(quick=True), "run", tmp_path, tmp_path)
    assert [loop_steps.day_spec(st, d, Service({}, []), 10).sim for d in (0, 1)] == \
           [simulator_day(st.cfg.seed, 1), simulator_day(st.cfg.seed, 2)]


def test_the_commands_name_the_day_only_past_the_first():
    run = SimCommand(Path(SMALL), 5, 7, Path("s.csv"), "dummy")
    assert "--day" not in run.argv()
    later = SimCommand(Path(SMALL), 5, 7, Path("s.csv"), "dummy", day=3).argv()
    assert later[later.index("--day") + 1] == "3"
    cal = CalibrateCommand(Path(SMALL), 5, 7, Path("c.json"), day=2).argv()
    assert cal[cal.index("--day") + 1] == "2" and cal[cal.index("--seed") + 1] == "7"


def test_a_played_day_is_checked_and_carries_its_own_references(small_world, tmp_path):
    service = Service({"random": {"kind": "random"}, "sticky": {"kind": "sticky_artist"}},
                      [{"name": "AB", "arms": {"C": "random", "T1": "sticky"}}], 1)
    spec = DaySpec("day 2", tmp_path / "day2", SMALL, 11, 2, 30, service, in_process=True, references=20)
    day = play_day(spec)
    assert len(day.stats) == 30 and (day.events["message"] == "last").sum() == 30
    assert set(day.stats["day"]) == {2}
    assert {"random", "oracle", "anchor_catalog"} <= set(day.references)
    cal = json.loads((tmp_path / "day2" / "references" / "calibration.json").read_text())
    assert (cal["seed"], cal["day"], cal["episodes"]) == (11, 2, 20)    # the day's own first sessions
    assert set(day.seconds) == {"play", "references_wait"} and day.service_config.is_file()
    # references started before the day (beside the work that precedes it) are the ones it reads
    early = References.of(spec)
    again = play_day(DaySpec("day 2", tmp_path / "again", SMALL, 11, 2, 30, service, in_process=True), early)
    assert again.references.keys() == day.references.keys()
    assert again.references["oracle"].time_per_session == pytest.approx(day.references["oracle"].time_per_session)
    assert again.stats.equals(day.stats)
