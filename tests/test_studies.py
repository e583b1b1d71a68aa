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
