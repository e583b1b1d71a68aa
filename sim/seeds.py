"""The simulator's seed rule: every session has random streams of its own, named by
(seed, day, episode), so a session is the same whichever recommender plays it, whichever
process plays it and whichever other days or sessions are played with it.

Two kinds of stream per session: the listener's (who starts on which track, then the
responses) and a random agent's. numpy's ``SeedSequence(seed, spawn_key=(day, kind))``
makes one key per day and kind for Philox, numpy's counter-based generator, and episode
``e``'s numbers are the counter blocks ``(j, 0, e, 0)``, j = 0, 1, ...: independent
streams that a session reaches by setting a counter. (Hashing a SeedSequence per session
costs about as much as playing a Random session, which would halve the runner's speed.)

Day ``d`` of seed ``S`` is the same sessions whether a run plays days 1..d or day d
alone (``python -m sim.run --seed S --day d``): a job that plays one day at a time
passes the day's number, never a seed of its own making.
"""
from __future__ import annotations

import numpy as np

LISTENER, AGENT = 0, 1   # the kinds of a session's streams
_COUNTER_LIMIT = 1 << 64


class SessionStreams:
    """One kind of stream for every session of day ``day`` of ``seed``.

    >>> listener = SessionStreams(424242, day=1)
    >>> env.np_random = listener.at(episode=0)   # then env.reset() starts episode 0
    """

    def __init__(self, seed: int, day: int, kind: int = LISTENER):
        if seed < 0 or day < 0 or kind not in (LISTENER, AGENT):
            raise ValueError(f"no session streams for seed {seed}, day {day}, kind {kind}: the seed and "
                             f"day must be >= 0, the kind LISTENER ({LISTENER}) or AGENT ({AGENT})")
        self.seed, self.day, self.kind = seed, day, kind
        key = np.random.SeedSequence(seed, spawn_key=(day, kind)).generate_state(2, np.uint64)
        self._bitgen = np.random.Philox(key=key)
        self.generator = np.random.Generator(self._bitgen)
        self._state = self._bitgen.state   # counter 0, empty buffer: a stream's start

    def at(self, episode: int) -> np.random.Generator:
        """The generator at the first number of ``episode``'s stream. The same object is
        repositioned on every call: draw a session's numbers before asking for the next."""
        if not 0 <= episode < _COUNTER_LIMIT:
            raise ValueError(f"episode {episode} is out of range 0..{_COUNTER_LIMIT - 1}")
        self._state["state"]["counter"][2] = episode
        self._bitgen.state = self._state
        return self.generator
