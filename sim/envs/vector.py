"""A batch of listening sessions stepped together with numpy: the same user model as
:class:`~sim.envs.listener.ListenerEnv`, for offline evaluation far beyond what one
Python call per step allows."""
from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from sim.config import SessionConfig
from sim.envs.listener import START, UnknownTrackError
from sim.seeds import SessionStreams
from sim.world import World


class ListenerVectorEnv(VectorEnv):
    """``num_envs`` independent sessions of :class:`ListenerEnv`, stepped as arrays.

    Spaces, reward, start and end of a session are those of ``ListenerEnv``, batched:
    actions are an int array ``[num_envs]``; observations
    ``{"user": int64[num_envs], "prev_track": int64[num_envs]}``; ``info["prev_time"]``
    a float array. Autoreset is ``NEXT_STEP`` (Gymnasium's default): the step after a
    session ends ignores that sub-environment's action and returns the new session's
    first observation with reward 0.

    A session's numbers are drawn as ``ListenerEnv.reset`` draws them, in the order
    sessions start (sub-environments 0..n-1, then each step's restarts by index): after
    ``reset(seed=s)`` from one generator for the batch, so with ``num_envs=1`` it replays
    ``ListenerEnv.reset(seed=s)`` and the unseeded resets after it; after
    ``reset(options={"streams": SessionStreams(seed, day)})`` the k-th session started
    draws from episode k's stream (``sim.seeds``): the runner's sessions of that day, at
    any batch size. The tests hold both to the single env's sessions.

    Example:
    >>> venv = ListenerVectorEnv(world, cfg.session, num_envs=1024)
    >>> obs, info = venv.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, world: World, session: SessionConfig, num_envs: int):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1 (got {num_envs})")
        self.world = world
        self.num_envs = num_envs
        self.n_tracks, self.n_users = world.n_tracks, world.n_users
        self.single_action_space = spaces.Discrete(self.n_tracks)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.single_observation_space = spaces.Dict({"user": spaces.Discrete(self.n_users),
                                                     "prev_track": spaces.Discrete(self.n_tracks)})
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._emb = world.embeddings64
        self._artist = world.track_artist.astype(np.int64)
        self._interest_track = np.full(world.nearest.shape[:2], -1, dtype=np.int64)
        for u, ints in enumerate(world.interests):
            self._interest_track[u, :len(ints)] = ints
        self._budget0 = session.budget
        self._max_steps = session.max_steps
        self._discount = session.artist_discount ** np.arange(session.max_steps + 2)
        n, width = num_envs, session.max_steps + 1
        self.user = np.zeros(n, dtype=np.int64)
        self.interest = np.zeros(n, dtype=np.int64)
        self.session_embedding = np.zeros((n, self._emb.shape[1]))
        self._bias = np.zeros(n)
        self._sharp = np.zeros(n)
        self.played = np.full((n, width), -1, dtype=np.int64)        # session's tracks so far
        self._played_artist = np.full((n, width), -1, dtype=np.int64)
        self.n_played = np.zeros(n, dtype=np.int64)
        self.budget = np.zeros(n, dtype=np.int64)
        self.steps = np.zeros(n, dtype=np.int64)
        self.prev_track = np.zeros(n, dtype=np.int64)
        self.prev_time = np.ones(n)
        self._prev_done = np.zeros(n, dtype=bool)
        self._all = np.ones(n, dtype=bool)
        self._started = False
        self._streams: SessionStreams | None = None   # the runner's sessions, by start order
        self._sessions = 0
        self._draws = np.zeros((n, START + self._max_steps))   # each session's numbers

    def _start(self, idx: np.ndarray) -> None:
        """Start new sessions in sub-environments ``idx``: their numbers drawn as
        ListenerEnv.reset draws them, then the starts set as arrays."""
        k = len(idx)
        if k == 0:
            return
        width = START + self._max_steps
        if self._streams is None:
            u = self.np_random.random((k, width))
        else:
            at, first = self._streams.at, self._sessions
            u = np.array([at(first + j).random(width) for j in range(k)])
            self._sessions += k
        self._draws[idx] = u
        w = self.world
        users = (u[:, 0] * self.n_users).astype(np.int64)
        interests = (u[:, 1] * w.n_interests[users]).astype(np.int64)
        first = w.nearest[users, interests, (u[:, 2] * w.nearest.shape[2]).astype(np.int64)].astype(np.int64)
        self.user[idx], self.interest[idx] = users, interests
        self.session_embedding[idx] = self._emb[self._interest_track[users, interests]]
        self._bias[idx] = w.consume_bias[users]
        self._sharp[idx] = w.consume_sharpness[users]
        self.played[idx] = -1
        self._played_artist[idx] = -1
        self.played[idx, 0] = first
        self._played_artist[idx, 0] = self._artist[first]
        self.n_played[idx] = 1
        self.budget[idx] = self._budget0
        self.steps[idx] = 0
        self.prev_track[idx] = first
        self.prev_time[idx] = 1.0

    def _obs(self) -> dict:
        return {"user": self.user.copy(), "prev_track": self.prev_track.copy()}

    def _info(self) -> dict:
        return {"prev_time": self.prev_time.copy(), "_prev_time": self._all.copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        options = dict(options or {})
        streams = options.pop("streams", None)
        if options:
            raise ValueError(f"ListenerVectorEnv.reset takes only the option streams (got "
                             f"{sorted(options)}); pin a session's start with ListenerEnv.reset(options=...)")
        if streams is not None and seed is not None:
            raise ValueError("pass seed or options['streams'], not both: the streams seed every session")
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._streams, self._sessions = streams, 0
        self._start(np.arange(self.num_envs))
        self._prev_done[:] = False
        self._started = True
        return self._obs(), self._info()

    def listen_time(self, tracks: np.ndarray) -> np.ndarray:
        """Each sub-environment's time for its track now (no state change)."""
        return self._listen_time_at(np.arange(self.num_envs), np.asarray(tracks, dtype=np.int64))

    def step(self, actions):
        if not self._started:
            raise RuntimeError("step() called before reset(): call reset() first")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise UnknownTrackError(f"actions must be an integer array of shape ({self.num_envs},) "
                                    f"(got {actions.dtype} {actions.shape})")
        bad = (actions < 0) | (actions >= self.n_tracks)
        active = ~self._prev_done
        if (bad & active).any():
            i = int(np.flatnonzero(bad & active)[0])
            raise UnknownTrackError(f"track {int(actions[i])} (sub-environment {i}) is not in the "
                                    f"catalog (tracks are 0..{self.n_tracks - 1})")
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        restart = np.flatnonzero(self._prev_done)
        self._start(restart)
        live = np.flatnonzero(active)
        if len(live):
            a = actions[live].astype(np.int64)
            sub_time = self._listen_time_at(live, a)
            pos = self.n_played[live]
            self.played[live, pos] = a
            self._played_artist[live, pos] = self._artist[a]
            self.n_played[live] += 1
            self.steps[live] += 1
            drop = self._draws[live, START - 1 + self.steps[live]] >= sub_time
            self.budget[live] -= drop
            rewards[live] = sub_time
            self.prev_track[live] = a
            self.prev_time[live] = sub_time
            terminated[live] = self.budget[live] <= 0
            truncated[live] = ~terminated[live] & (self.steps[live] >= self._max_steps)
        self._prev_done = terminated | truncated
        return self._obs(), rewards, terminated, truncated, self._info()

    def _listen_time_at(self, idx: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        repeat = (self.played[idx] == tracks[:, None]).any(axis=1)
        plays = (self._played_artist[idx] == self._artist[tracks][:, None]).sum(axis=1)
        dots = np.einsum("ij,ij->i", self._emb[tracks], self.session_embedding[idx])
        x = (dots - self._bias[idx]) * self._sharp[idx]
        raw = 1.0 / (1.0 + np.exp(-np.maximum(x, -700.0)))
        time = np.round(raw * self._discount[plays], 2)
        time[repeat] = 0.0
        return time
