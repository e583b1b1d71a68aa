"""A/B assignment: the course's hash, deterministic, balanced, independent across experiments."""
from __future__ import annotations

import subprocess
import sys

import mmh3
import numpy as np
import pytest
from scipy import stats

from service.assignment import Experiment, parse_experiments

USERS = 100_000


def test_matches_course_hash_definition():
    e = Experiment("SEED", ("C", "T1", "T2"), ("a", "b", "c"))
    seed = mmh3.hash("SEED", signed=False)
    for user in (0, 1, 42, 99_999):
        assert e.arm(user) == ("C", "T1", "T2")[mmh3.hash(str(user), seed, signed=False) % 3]


def test_deterministic_across_processes():
    users = [0, 1, 7, 123, 99_999]
    e = Experiment("EXP", ("C", "T1", "T2", "T3"), ("a",) * 4)
    code = ("from service.assignment import Experiment;"
            "e=Experiment('EXP',('C','T1','T2','T3'),('a',)*4);"
            f"print(','.join(e.arm(u) for u in {users}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().split(",") == [e.arm(u) for u in users]


@pytest.mark.parametrize("arms", [2, 3, 6])
def test_arms_balanced_chi_square(arms):
    e = Experiment(f"BALANCE{arms}", tuple(["C"] + [f"T{i}" for i in range(1, arms)]), ("a",) * arms)
    counts = np.bincount([e.arm_index(u) for u in range(USERS)], minlength=arms)
    assert stats.chisquare(counts).pvalue > 0.001


def test_experiments_independent():
    a = Experiment("A", ("C", "T1"), ("x", "x"))
    b = Experiment("B", ("C", "T1"), ("x", "x"))
    table = np.zeros((2, 2))
    for u in range(20_000):
        table[a.arm_index(u), b.arm_index(u)] += 1
    assert stats.chi2_contingency(table).pvalue > 0.001


def test_parse_rejects_bad_experiments():
    with pytest.raises(ValueError, match="control"):
        parse_experiments([{"name": "E", "arms": {"T1": "r"}}], {"r"})
    with pytest.raises(ValueError, match="unknown recommender"):
        parse_experiments([{"name": "E", "arms": {"C": "nope"}}], {"r"})
    with pytest.raises(ValueError, match="unique"):
        parse_experiments([{"name": "E", "arms": {"C": "r"}}] * 2, {"r"})
