"""The learners' comparison (studies.compare_learners): its paired arithmetic by hand, and
a list that is not the same sessions refused rather than compared."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sim.judge import JudgeError
from sim.run import Session
from studies.compare_learners import Judged, compare, headroom_share, pooled, table


def rows(times: list[float], users: list[int] | None = None, first: int = 0) -> list[Session]:
    users = users or list(range(len(times)))
    return [Session(1, e, u, first + e, 3, t - 1.0, t, 0) for e, (u, t) in enumerate(zip(users, times))]


def test_pooled_seeds_add_their_variances():
    assert pooled([0.1, 0.3], [0.03, 0.04]) == pytest.approx((0.2, 0.025))
    assert pooled([0.5], [0.1]) == pytest.approx((0.5, 0.1))


def test_the_comparison_pairs_every_list_with_the_best_peer_on_the_same_sessions_by_hand():
    # two seeds, four sessions each (users 0, 0, 1, 2: user 0's two sessions average first)
    users = [0, 0, 1, 2]
    refs = {s: {"random": rows([1.0, 1.0, 1.0, 1.0], users), "oracle": rows([11.0, 11.0, 11.0, 11.0], users)}
            for s in (1, 2)}
    # per user: peer_a 2, 4, 6 -> mean 4 -> share 0.3 on both seeds; peer_b seed 1: 3, 5, 6 -> 14/3 -> 11/30,
    # seed 2: 3, 5, 7 -> 5 -> 0.4: the best peer
    a = {1: rows([2.0, 2.0, 4.0, 6.0], users), 2: rows([2.0, 2.0, 4.0, 6.0], users)}
    b = {1: rows([3.0, 3.0, 5.0, 6.0], users), 2: rows([2.0, 4.0, 5.0, 7.0], users)}
    mine = {1: rows([5.0, 3.0, 5.0, 6.0], users), 2: rows([3.0, 3.0, 5.0, 7.0], users)}
    judged = [Judged("peer_a", "learner", a, 1.0), Judged("peer_b", "learner", b, 2.0),
              Judged("mine", "learner", mine, 3.0)]
    out = {r["lists"]: r for r in compare(judged, refs, ["peer_a", "peer_b"])}
    assert out["peer_a"]["share_1"] == pytest.approx(0.3)
    assert out["peer_b"]["share_1"] == pytest.approx(11 / 30) and out["peer_b"]["share_2"] == pytest.approx(0.4)
    assert {r["best_peer"] for r in out.values()} == {"peer_b"}
    assert out["peer_b"]["vs_best_peer"] == 0 and out["peer_b"]["vs_best_peer_se"] == 0
    # mine - peer_b per session, then per user: seed 1 [2, 0, 0, 0] -> users [1, 0, 0];
    # seed 2 [1, -1, 0, 0] -> users [0, 0, 0]; over the Oracle's 10 of headroom
    d1 = np.array([1.0, 0.0, 0.0]) / 10
    se1 = d1.std(ddof=1) / math.sqrt(3)
    assert out["mine"]["vs_best_peer"] == pytest.approx((d1.mean() + 0.0) / 2)
    assert out["mine"]["vs_best_peer_se"] == pytest.approx(math.sqrt(se1 ** 2 + 0.0) / 2)
    assert out["mine"]["share"] == pytest.approx(np.mean([headroom_share(mine[s], 1.0, 11.0) for s in (1, 2)]))
    text = table(list(out.values()), [1, 2])
    assert text.splitlines()[2].startswith("| mine |") and "vs peer_b" in text.splitlines()[0]


def test_lists_judged_on_other_sessions_are_refused():
    users = [0, 1]
    refs = {1: {"random": rows([1.0, 1.0], users), "oracle": rows([3.0, 3.0], users)}}
    judged = [Judged("peer", "learner", {1: rows([2.0, 2.0], users)}),
              Judged("moved", "learner", {1: rows([2.0, 2.0], users, first=7)})]
    with pytest.raises(JudgeError, match="not the same sessions"):
        compare(judged, refs, ["peer"])
