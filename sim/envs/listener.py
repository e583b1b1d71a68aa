"""One listening session of the course's user model as a Gymnasium environment."""
from __future__ import annotations

import math
import operator
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim.config import SessionConfig
from sim.world import World


START = 3   # a session's first numbers choose its user, interest and first track


class UnknownTrackError(ValueError):
    """The agent named a track that is not in the catalog."""


def check_track(action: Any, n_tracks: int) -> int:
    """The action as a catalog track id, or an error naming the offending value."""
    try:
        track = operator.index(action)
    except TypeError:
        raise UnknownTrackError(f"track {action!r} is not a track id: recommend an integer "
                                f"in 0..{n_tracks - 1}") from None
    if not 0 <= track < n_tracks:
        raise UnknownTrackError(f"track {track} is not in the catalog (tracks are "
                                f"0..{n_tracks - 1})")
    return track


class ListenerEnv(gym.Env):
    """A listener's session: the agent is the recommender, the environment the listener.

    This is the course's user model, exactly (see docs/architecture.md and the course
    reference), plus one addition of ours: the session length limit.

    ## Action space
    ``Discrete(tracks)``: the track to play next. A value outside the catalog raises
    :class:`UnknownTrackError` naming it.

    ## Observation space
    ``Dict(user=Discrete(users), prev_track=Discrete(tracks))``: what a recommender
    sees. The time the user listened to ``prev_track`` is ``info["prev_time"]`` (1.0
    after reset: the first track, chosen by the user, counts as fully played).

    ## Reward
    The fraction of the recommended track the user listened to:
    ``round(sigmoid((dot(track, session) - consume_bias) * consume_sharpness)
    * artist_discount ** plays_of_its_artist_so_far, 2)``, and 0 for a track already
    played in this session. Every play, a repeat included, counts as a play of its artist.

    ## Starting state
    A user drawn uniformly, one of its interest tracks drawn uniformly; the session
    embedding is that interest's embedding and the first track is drawn uniformly among
    the ``first_track_neighbours`` tracks with the largest inner product with it.
    ``reset(options={"user": u, "interest": j, "first_track": t})`` pins any of them
    (``first_track`` must be one of those nearest tracks).

    ## Episode end
    After each step the budget (``session.budget``, course: 5) drops by one with
    probability ``1 - time``; the episode terminates when it reaches 0. Our addition:
    the episode is truncated after ``session.max_steps`` recommended tracks, since a
    track scoring 1.0 (raw >= 0.995 after rounding) never drops the budget.

    ## Randomness
    Only ``np_random``. Each reset takes the session's numbers from it in one draw of
    ``3 + max_steps``: the first three choose the start (drawn even when ``options`` pin
    it), the rest are the listener's responses, the k-th step's budget draw being the
    k-th of them. So a session seeded by ``reset(seed=...)`` starts the same user on the
    same track and answers step k with the same number whatever is recommended, and an
    unseeded reset continues with the next session's numbers. The runner gives every
    session its own stream, by (seed, day, episode): ``env.np_random =
    SessionStreams(seed, day).at(episode)`` then ``env.reset()`` (``sim.seeds``).

    ## Example
    >>> from sim.config import load_config
    >>> from sim.world import World
    >>> cfg = load_config("sim/config/small.yml")
    >>> env = ListenerEnv(World.from_config(cfg), cfg.session)
    >>> obs, info = env.reset(seed=42)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, world: World, session: SessionConfig, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not supported: use one of "
                             f"{self.metadata['render_modes']} or None")
        self.world = world
        self.session_config = session
        self.render_mode = render_mode
        self.n_tracks = world.n_tracks
        self.n_users = world.n_users
        self.action_space = spaces.Discrete(self.n_tracks)
        self.observation_space = spaces.Dict({"user": spaces.Discrete(self.n_users),
                                              "prev_track": spaces.Discrete(self.n_tracks)})
        # Plain Python containers on the per-step path: indexing numpy for one scalar costs
        # more than the arithmetic itself.
        self._emb = world.embeddings64   # float64: the same sums as the vector env
        self._artist = world.track_artist.tolist()
        self._bias = world.consume_bias.tolist()
        self._sharp = world.consume_sharpness.tolist()
        self._n_interests = world.n_interests.tolist()
        self._nearest = world.nearest
        self._n_neighbours = world.nearest.shape[2]
        self._discount = [session.artist_discount ** k for k in range(session.max_steps + 2)]
        self._budget0 = session.budget
        self._max_steps = session.max_steps
        self.user = -1
        self.interest = -1
        self.session_embedding = np.zeros(world.embeddings.shape[1])
        self.played: set[int] = set()
        self.artist_plays: dict[int, int] = {}
        self.history: list[tuple[int, float]] = []
        self.budget = 0
        self.steps = 0
        self._done = True
        self.sessions = 0   # sessions started: lets observers (the Oracle) notice a new one
        self._bias_u = 0.0
        self._sharp_u = 0.0
        self._draws: list[float] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        # The session's numbers in one draw (see "Randomness"); uniform integers as
        # floor(u * n) (bias < n / 2**53), as the vector env draws them too.
        u = self._draws = self.np_random.random(START + self._max_steps).tolist()
        user = options.get("user")
        user = int(u[0] * self.n_users) if user is None else self._check("user", user, self.n_users)
        j = options.get("interest")
        n_int = self._n_interests[user]
        j = int(u[1] * n_int) if j is None else self._check("interest", j, n_int)
        first = options.get("first_track")
        if first is None:
            first = self._nearest[user, j, int(u[2] * self._n_neighbours)]
        elif int(first) not in self._nearest[user, j].tolist():
            raise ValueError(f"first_track {first} is not among the {self._n_neighbours} tracks "
                             f"nearest to user {user}'s interest {j}: {self._nearest[user, j].tolist()}")
        first = int(first)
        self.user, self.interest = user, j
        self.session_embedding = self._emb[self.world.interests[user][j]]
        self._bias_u, self._sharp_u = self._bias[user], self._sharp[user]
        self.played = {first}
        self.artist_plays = {self._artist[first]: 1}
        self.history = [(first, 1.0)]
        self.budget = self._budget0
        self.steps = 0
        self._done = False
        self.sessions += 1
        return {"user": user, "prev_track": first}, {"prev_time": 1.0}

    @staticmethod
    def _check(name: str, value: Any, high: int) -> int:
        v = operator.index(value)
        if not 0 <= v < high:
            raise ValueError(f"option {name}={v} is out of range 0..{high - 1}")
        return v

    def listen_time(self, track: int) -> float:
        """The time the current user would listen to ``track`` now (no state change):
        what the Oracle maximises and what ``step`` returns."""
        if track in self.played:
            return 0.0
        x = (float(np.dot(self._emb[track], self.session_embedding)) - self._bias_u) * self._sharp_u
        raw = 1.0 / (1.0 + math.exp(-x)) if x > -700.0 else 0.0
        return round(raw * self._discount[self.artist_plays.get(self._artist[track], 0)], 2)

    def step(self, action):
        if self._done:
            raise RuntimeError("step() called on a finished session: call reset() first")
        track = action if type(action) is int and 0 <= action < self.n_tracks \
            else check_track(action, self.n_tracks)
        time = self.listen_time(track)
        self.played.add(track)
        artist = self._artist[track]
        self.artist_plays[artist] = self.artist_plays.get(artist, 0) + 1
        self.history.append((track, time))
        self.steps += 1
        if self._draws[START - 1 + self.steps] >= time:
            self.budget -= 1
        terminated = self.budget <= 0
        truncated = not terminated and self.steps >= self._max_steps
        self._done = terminated or truncated
        return {"user": self.user, "prev_track": track}, time, terminated, truncated, {"prev_time": time}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        w = self.world
        lines = [f"user {self.user} (interest {self.interest}), budget {self.budget}, "
                 f"{self.steps} recommended"]
        for track, time in self.history:
            lines.append(f"  {time:4.2f}  {track:>6}  {w.artist_names[w.track_artist[track]]} - "
                         f"{w.titles[track]}")
        return "\n".join(lines)
