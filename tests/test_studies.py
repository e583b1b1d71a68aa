"""The learners study's judge: how much of a list is the anchor's hidden scene."""
from __future__ import annotations

import numpy as np

from studies.learners import scene_share


def test_scene_share_counts_other_artists_of_the_anchors_scene_by_hand():
    artist = np.array([0, 0, 1, 2, 3])
    scene = np.array([7, 7, 7, 8, 7])
    lists = np.array([
        [1, 2, 3, -1],     # 1 is the anchor's own artist (not counted); 2 same scene, 3 not
        [0, 4, -1, -1],    # 0 own artist; 4 same scene
        [3, 4, 0, -1],     # 3 other scene; 4 and 0 same scene
        [0, 1, 2, 4],      # anchor in scene 8: none of them
        [2, 3, -1, -1],    # 2 same scene, 3 not
    ], dtype=np.int32)
    # other-artist entries: 2 + 1 + 3 + 4 + 2 = 12; from the anchor's scene: 1 + 1 + 2 + 0 + 1 = 5
    assert scene_share(lists, artist, scene) == 5 / 12


def test_the_study_judges_every_list_on_the_same_sessions_and_pairs_them(small_world, tmp_path):
    """Two different lists through the service's in-process path meet the same users on
    the same first tracks as the references in every session, and the paired figure is
    the difference of the shares of the headroom."""
    import argparse

    import pytest

    from studies.learners import Study, scene_lists
    args = argparse.Namespace(config="sim/config/small.yml", eval_episodes=150, eval_seed=5,
                              reference="anchor_catalog", policy=[])
    study = Study(args, tmp_path)
    lists = scene_lists(study.world, study.scene, study.popularity, k=20)
    scene, empty = tmp_path / "scene.npy", tmp_path / "empty.npy"
    np.save(scene, lists)
    np.save(empty, np.full_like(lists, -1))
    a, b = study.served(scene, "any"), study.served(empty, "any")
    starts = lambda rows: [(r.user, r.first_track) for r in rows]
    assert starts(a) == starts(b) == starts(study.ref_rows["random"]) and len(a) == 150
    assert [r.time for r in a] != [r.time for r in b]
    for rows in (a, b):
        fig = study.judged("served", rows)
        diff, se = fig["served_vs_anchor_catalog"]
        assert diff == pytest.approx(fig["served"] - study.refs["anchor_catalog"], abs=2e-3) and se > 0


def test_the_constants_study_serves_the_learnable_estimates_through_policy_json():
    from studies.constants import defaults, variants
    est = {"discount": 0.6, "first_artist_prior": 0.7, "fresh_start": 0.5}
    v = variants(est)
    assert v["configured"] == defaults() == {"discount": 0.8, "first_artist_prior": 0.9, "fresh_start": 0.7}
    assert v["learned"] == {}                                   # all three from policy.json
    assert v["learned discount"] == {"first_artist_prior": 0.9, "fresh_start": 0.7}
    assert v["learned thresholds"] == {"discount": 0.8}
