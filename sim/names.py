"""Readable, seeded names for artists and track titles, so that logs, the console agent
and the service's catalog read like music rather than numbers. Pure functions of a
``numpy.random.Generator``; no download, no model."""
from __future__ import annotations

import numpy as np

_ONSETS = ["b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "kl", "l", "m",
           "n", "p", "pr", "r", "s", "sh", "st", "t", "tr", "v", "w", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou", "y"]
_CODAS = ["", "", "", "n", "r", "s", "l", "x", "nd", "rk", "th", "m"]
_ADJECTIVES = ["Blue", "Broken", "Silent", "Golden", "Electric", "Midnight", "Velvet", "Wild",
               "Lonely", "Burning", "Hollow", "Crystal", "Neon", "Quiet", "Restless", "Frozen",
               "Lucky", "Paper", "Savage", "Gentle", "Northern", "Distant", "Sweet", "Iron",
               "Faded", "Bright", "Secret", "Endless", "Little", "Crimson"]
_NOUNS = ["Heart", "River", "Sky", "Dream", "Road", "Fire", "Rain", "Night", "Echo", "Garden",
          "Mirror", "Shadow", "Summer", "Ocean", "Highway", "Letter", "Moon", "Train", "City",
          "Window", "Storm", "Promise", "Ghost", "Morning", "Island", "Signal", "Horizon",
          "Memory", "Machine", "Angel", "Desert", "Lights", "Wolves", "Kids", "Lovers"]
_BAND_PREFIX = ["The", "The", "", "", "", "DJ", "Lil", "MC", "Los", "Club"]


def _word(rng: np.random.Generator, syllables: int) -> str:
    parts = [_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
             for _ in range(syllables)]
    return ("".join(parts) + _CODAS[rng.integers(len(_CODAS))]).capitalize()


def artist_names(rng: np.random.Generator, n: int) -> list[str]:
    """Distinct artist names: the public catalog identifies an artist by its name."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        style = rng.integers(3)
        if style == 0:
            name = f"{_word(rng, 2)} {_word(rng, int(rng.integers(1, 3)))}"
        elif style == 1:
            prefix = _BAND_PREFIX[rng.integers(len(_BAND_PREFIX))]
            name = f"{prefix} {_ADJECTIVES[rng.integers(len(_ADJECTIVES))]} " \
                   f"{_NOUNS[rng.integers(len(_NOUNS))]}".strip()
        else:
            name = _word(rng, int(rng.integers(2, 4)))
        if name in seen:
            name = f"{name} {len(names)}"
        seen.add(name)
        names.append(name)
    return names


def track_titles(rng: np.random.Generator, n: int) -> list[str]:
    """Titles need not be distinct (real catalogs repeat them); the track id is the key."""
    a = rng.integers(len(_ADJECTIVES), size=n)
    b = rng.integers(len(_NOUNS), size=n)
    style = rng.integers(4, size=n)
    out = []
    for i in range(n):
        adj, noun = _ADJECTIVES[a[i]], _NOUNS[b[i]]
        if style[i] == 0:
            out.append(f"{adj} {noun}")
        elif style[i] == 1:
            out.append(f"The {noun}")
        elif style[i] == 2:
            out.append(f"{noun} of the {adj} {_NOUNS[(b[i] + 7) % len(_NOUNS)]}")
        else:
            out.append(f"{adj}")
    return out
