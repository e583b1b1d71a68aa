"""item2vec: gensim's Word2Vec (skip-gram, negative sampling) over sessions as sentences.

A session's liked tracks (`training.learning.pairs.liked_items`), in play order, are a
sentence; tracks that share contexts get close vectors, and a track's candidates are its
nearest by cosine. Layout (`training.learning.layout`): the anchor's artist leads (`lead`
places), then the neighbours, at most `max_per_artist` per artist; a track no session
liked (gensim has no vector for it) is filled from the catalog: its artist's popular
tracks, then its public tag's. One worker and a fixed hash, so a seed gives the same
vectors. No policy parameters; its files: the vectors (`vectors.npy`, `tracks.npy`).
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.learning.i2i import cosine_candidates
from training.learning.layout import Layout, lay_out
from training.learning.learners.base import Learned, Learner, save_arrays
from training.learning.pairs import liked_items
from training.learning.window import Window


@dataclass
class Item2VecSettings(Layout):
    liked_time: float = 0.5     # a track listened this long joins its session's sentence
    vector_size: int = 64
    window: int = 30            # context positions on each side (30: a whole session)
    negative: int = 5
    ns_exponent: float = 0.75
    sample: float = 0.001       # downsampling of frequent tracks
    alpha: float = 0.025
    epochs: int = 20
    min_count: int = 1
    pool: int = 100             # candidates per track kept for the layout


def stable_hash(word: str) -> int:
    """gensim seeds each word's starting vector with hash(word + seed): Python's own hash
    changes per process, so a fixed one keeps a seed's vectors the same."""
    return zlib.crc32(word.encode())


class Item2VecLearner(Learner):
    Settings = Item2VecSettings

    def learn(self, window: Window, k: int, workdir: Path) -> Learned:
        from gensim.models import Word2Vec
        s = self.settings
        t0 = time.perf_counter()
        items = liked_items(window.sessions, s.liked_time)
        sentences = [[str(t) for t in g] for g in items.groupby("session_id", sort=True)["track"].agg(list)
                     if len(g) > 1]
        n = window.catalog.size
        if not sentences:
            vectors, tracks = np.zeros((0, s.vector_size), np.float32), np.zeros(0, np.int64)
        else:
            model = Word2Vec(sentences, vector_size=s.vector_size, window=s.window, min_count=s.min_count,
                             sg=1, negative=s.negative, ns_exponent=s.ns_exponent, sample=s.sample, alpha=s.alpha,
                             epochs=s.epochs, workers=1, seed=window.seed, hashfxn=stable_hash)
            vectors = model.wv.vectors
            tracks = np.array([int(w) for w in model.wv.index_to_key], dtype=np.int64)
        candidates = cosine_candidates(vectors, tracks, n, s.pool)
        lists = lay_out(candidates, window.catalog, k, self.layout())
        out = save_arrays(workdir, vectors=np.asarray(vectors, dtype=np.float32), tracks=tracks)
        figures = {"sentences": float(len(sentences)), "tracks_with_vectors": float(len(tracks)),
                   "training_seconds": time.perf_counter() - t0}
        return Learned(lists, {}, figures, out)
