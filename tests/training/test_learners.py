"""The learners: each one trains on a window of the small world's logs and writes lists
in the contract's format (formats.learned, read back); the one layout; the settings; a
learner from outside the project by its import path."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from formats import learned as learned_format
from training.learning.layout import Layout, catalog_lists, lay_out
from training.learning.learners.base import BUILTIN, LearnerError, LearnerSpec, learner_class
from training.learning.window import Window

K = 50
SPECS = {
    "embedding": LearnerSpec("contrast", "embedding", "training/config/contrast.yml", {"max_epochs": 2}),
    "cooccurrence": LearnerSpec("cooccurrence", "cooccurrence", "training/config/learners/cooccurrence.yml"),
    "item2vec": LearnerSpec("item2vec", "item2vec", "training/config/learners/item2vec.yml", {"epochs": 5}),
    "als": LearnerSpec("als", "als", "training/config/learners/als.yml"),
    "artist": LearnerSpec("artist", "artist", "training/config/learners/artist.yml"),
}


@pytest.fixture(scope="module")
def window(small_world, small_day):
    return Window((str(small_day),), small_world, seed=5, days=(1,))


def test_every_builtin_learner_is_tested():
    assert set(SPECS) == set(BUILTIN)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_learner_learns_lists_in_the_contracts_format(name, window, repo, tmp_path):
    spec = SPECS[name]
    learner = spec.make(repo)
    learned = learner.learn(window, K, tmp_path / "work")
    folder = learned_format.write(tmp_path / "version", learned.lists, policy=learned.policy, model=learned.model,
                                  learner={"name": spec.name, "learner": spec.learner, "config": learner.describe(),
                                           "window": window.describe(), "figures": learned.figures})
    back = learned_format.read(folder, n_tracks=window.catalog.size)
    lists = np.asarray(back.lists)
    assert np.array_equal(lists, learned.lists) and lists.dtype == np.int32
    assert lists.shape == (window.catalog.size, K)
    assert back.learner["learner"] == name and back.learner["window"]["days"] == [1]
    assert (back.model is not None) == (learned.model is not None)
    n = window.catalog.size
    artist = window.catalog.artist
    rows = np.arange(n)[:, None]
    assert not (lists == rows).any(), "a track is never in its own list"
    assert all(len(set(r[r >= 0].tolist())) == (r >= 0).sum() for r in lists), "no track twice in a list"
    own = artist[np.maximum(lists, 0)] == artist[:, None]
    cap = learner.layout().max_per_artist
    for r in range(0, n, 97):   # the artist cap, on a sample of rows
        counts = np.bincount(artist[lists[r][lists[r] >= 0]])
        assert counts.max() <= cap
    fill = catalog_lists(window.catalog, K)
    assert ((lists >= 0).sum(1) >= (fill >= 0).sum(1)).all(), "no list is shorter than the catalog's fill"
    if learner.layout().lead:
        assert own[:, :2].all(), "the anchor's artist leads every list"
    assert learned.figures and all(np.isfinite(v) for v in learned.figures.values())


@pytest.mark.parametrize("name", ["cooccurrence", "item2vec", "als"])
def test_a_peer_learns_the_same_lists_from_the_same_window_and_seed(name, window, repo, tmp_path):
    a = SPECS[name].make(repo).learn(window, K, tmp_path / "a")
    b = SPECS[name].make(repo).learn(window, K, tmp_path / "b")
    assert np.array_equal(a.lists, b.lists)


def test_peers_find_neighbours_in_the_logs_not_only_the_catalog(window, repo, tmp_path):
    """Beyond the lead, a peer's lists differ from the catalog's fill for the tracks the
    logs met in a session with other liked tracks: what it learned, not what the tags say."""
    from training.learning.pairs import liked_items
    items = liked_items(window.sessions)
    basket = items.groupby("session_id")["track"].transform("size")
    met = np.unique(items.loc[basket > 1, "track"].to_numpy())
    assert len(met) > 100
    fill = catalog_lists(window.catalog, K)
    for name in ("cooccurrence", "item2vec", "als"):
        lists = SPECS[name].make(repo).learn(window, K, tmp_path / name).lists
        differ = (lists[met, 2:12] != fill[met, 2:12]).any(axis=1).mean()
        assert differ > 0.75, f"{name}: only {differ:.0%} of the met tracks' lists differ from the catalog's"


def _catalog(artists: list[int], popularity: list[float] | None = None, genres: list[int] | None = None):
    import pandas as pd

    from training.data.catalog import Catalog
    n = len(artists)
    pop = popularity or [1.0 / (t + 1) for t in range(n)]
    return Catalog(tracks=pd.DataFrame({"track": range(n), "popularity": pop}), artist=np.array(artists),
                   genre=np.array(genres or [0] * n), n_artists=max(artists) + 1,
                   n_genres=max(genres or [0]) + 1, path=Path(f"hand-{n}-{artists}"))


def test_the_layout_leads_with_the_artist_caps_artists_and_fills_from_the_catalog():
    # artists: tracks 0-2 -> a0, 3-5 -> a1, 6-7 -> a2; popularity falls with the id
    cat = _catalog([0, 0, 0, 1, 1, 1, 2, 2])
    cands = np.full((8, 6), -1)
    cands[0] = [3, 4, 5, 2, 3, 6]      # a1 x3 (one over the cap), a0's 2, 3 again, a2
    out = lay_out(cands, cat, 6, Layout(lead=2, max_per_artist=2, fill="catalog"))
    # lead: a0's ranked track 2, then its most popular other (1); then 3, 4 (5 over the cap), 6;
    # the fill: a2's next most popular (7)
    assert out[0].tolist() == [2, 1, 3, 4, 6, 7]
    assert out.dtype == np.int32
    # a track the learner never met: its artist, then its tag's popular tracks, two per artist
    assert out[7].tolist() == [6, 0, 1, 3, 4, -1]
    bare = lay_out(cands, cat, 6, Layout(lead=0, max_per_artist=0, fill="none"))
    assert bare[0].tolist() == [3, 4, 5, 2, 6, -1] and (bare[7] == -1).all()


def test_settings_refuse_an_unknown_key_and_a_bad_layout(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("liked_time: 0.5\nshrnk: 1\n")
    with pytest.raises(ValueError, match=r"unknown keys \['shrnk'\].*shrink"):
        learner_class("cooccurrence").from_config(cfg)
    with pytest.raises(ValueError, match="fill must be one of"):
        learner_class("als").from_config(None, fill="tags")


def test_a_learner_is_named_by_its_import_path_and_a_wrong_one_says_what_is_wrong(tmp_path, monkeypatch):
    (tmp_path / "written_learners.py").write_text(textwrap.dedent("""
        from training.learning.learners.base import Learned, Learner
        class Mine(Learner):
            def learn(self, window, k, workdir):
                raise NotImplementedError
        class NotALearner:
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert learner_class("written_learners:Mine").__name__ == "Mine"
    for ref, says in (("written_learners:NotALearner", "not a subclass"), ("no_such_module:X", "cannot import"),
                      ("knn", "not one of"), ("written_learners:Missing", "not a subclass")):
        with pytest.raises(LearnerError, match=says):
            learner_class(ref)
