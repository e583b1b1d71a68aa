"""The agents that play the recommender's part in a session. Every agent has the
recommender interface of docs/architecture.md (``recommend_next`` and ``end_session``),
so the runner drives a random baseline, the Oracle, a person, the service over HTTP
and any in-process recommender the same way."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Protocol, TextIO

import numpy as np

from sim.remote import AgentError, RemoteAgent, ServiceUnavailableError
from sim.world import World

AGENTS = ("dummy", "oracle", "remote", "console", "inprocess")
__all__ = ["AGENTS", "AgentError", "ServiceUnavailableError", "DummyAgent", "OracleAgent", "RemoteAgent",
           "ConsoleAgent", "inprocess_agent", "load_factory", "make_agent"]


class Recommender(Protocol):
    def recommend_next(self, user: int, prev_track: int, prev_time: float) -> int: ...
    def end_session(self, user: int, last_track: int, last_time: float) -> None: ...


class DummyAgent:
    """Uniformly random catalog tracks: the course's Random baseline. Draws in blocks
    because one numpy call per track would cost more than the simulator's whole step;
    a block about a session long, since the runner reseeds every session."""

    def __init__(self, n_tracks: int, seed: int | np.random.SeedSequence | None = None, block: int = 32):
        self._rng = np.random.default_rng(seed)
        self._n, self._block = n_tracks, block
        self._buf: list[int] = []

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        """Restart the random stream (the runner gives every session its own)."""
        self._rng = np.random.default_rng(seed)
        self._buf = []

    def recommend_next(self, user: int, prev_track: int, prev_time: float) -> int:
        if not self._buf:   # floor(u * n), as the env draws: integers() costs several times more
            self._buf = (self._rng.random(self._block) * self._n).astype(np.int64).tolist()
            self._buf.reverse()
        return self._buf.pop()

    def end_session(self, user: int, last_track: int, last_time: float) -> None:
        pass


class OracleAgent:
    """THE UPPER BOUND, not a recommender: it reads the hidden truth (the session's
    embedding, the user's parameters, what was played) and plays the unplayed track
    with the best expected time given the artist discount. Every experiment's headroom
    is measured against it; no real system can see what it sees.

    It is greedy (best next track), which is what "the best expected unplayed track"
    means; it keeps the top ``candidates`` tracks of the session by raw score and falls
    back to the whole catalog when a discount could push the best outside them, so its
    choice is always the exact argmax."""

    def __init__(self, env: Any, candidates: int = 2048):
        self.env = env.unwrapped
        w = self.env.world
        self._emb = w.embeddings64
        self._bias, self._sharp = w.consume_bias, w.consume_sharpness
        self._artist = w.track_artist.astype(np.int64)
        self._m = min(candidates, w.n_tracks)
        self._discount = self.env.session_config.artist_discount
        self._session_key: int | None = None
        self._plays = np.zeros(len(w.artist_names), dtype=np.int64)

    def _scores(self) -> np.ndarray:
        env = self.env
        x = (self._emb @ env.session_embedding - self._bias[env.user]) * self._sharp[env.user]
        return 1.0 / (1.0 + np.exp(-np.maximum(x, -700.0)))

    def _new_session(self) -> None:
        raw = self._scores()
        if self._m < len(raw):
            top = np.argpartition(-raw, self._m - 1)[:self._m]
            self._outside_max = float(np.max(np.delete(raw, top)))
        else:
            top = np.arange(len(raw))
            self._outside_max = -1.0
        self._raw_all = raw
        self._cand = top
        self._cand_raw = raw[top]
        self._cand_artist = self._artist[top]

    def recommend_next(self, user: int, prev_track: int, prev_time: float) -> int:
        env = self.env
        key = env.sessions
        if key != self._session_key:
            self._session_key = key
            self._new_session()
        plays = self._plays
        plays[:] = 0
        for artist, n in env.artist_plays.items():
            plays[artist] = n
        value = self._cand_raw * self._discount ** plays[self._cand_artist]
        played = np.fromiter(env.played, dtype=np.int64)
        value[np.isin(self._cand, played)] = -1.0
        best = int(np.argmax(value))
        if value[best] >= self._outside_max:
            return int(self._cand[best])
        full = self._raw_all * self._discount ** plays[self._artist]
        full[played] = -1.0
        return int(np.argmax(full))

    def end_session(self, user: int, last_track: int, last_time: float) -> None:
        self._session_key = None


class ConsoleAgent:
    """A person plays the recommender: sees what the listener just heard (with titles)
    and types the next track, to get a feel for the user model."""

    def __init__(self, world: World, seed: int | np.random.SeedSequence | None = None,
                 stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.world = world
        self._in, self._out = stdin or sys.stdin, stdout or sys.stdout
        self._random = DummyAgent(world.n_tracks, seed)
        self.reseed = self._random.reseed

    def _describe(self, track: int) -> str:
        w = self.world
        return (f"{track}: {w.artist_names[w.track_artist[track]]} - {w.titles[track]} "
                f"[{w.genre_names[w.track_genre[track]]}]")

    def recommend_next(self, user: int, prev_track: int, prev_time: float) -> int:
        print(f"user {user} listened to {prev_time:.0%} of {self._describe(prev_track)}", file=self._out)
        while True:
            print("next track id (Enter: random; '/WORD': search titles and artists): ",
                  end="", file=self._out, flush=True)
            line = self._in.readline()
            if not line:
                raise AgentError("console agent: input closed")
            line = line.strip()
            if not line:
                return self._random.recommend_next(user, prev_track, prev_time)
            if line.startswith("/"):
                word = line[1:].lower()
                w = self.world
                hits = [t for t in range(w.n_tracks)
                        if word in w.titles[t].lower() or word in w.artist_names[w.track_artist[t]].lower()]
                for t in hits[:15]:
                    print("  " + self._describe(t), file=self._out)
                print(f"  ({len(hits)} matches)", file=self._out)
                continue
            try:
                track = int(line)
            except ValueError:
                print(f"  {line!r} is not a track id", file=self._out)
                continue
            if 0 <= track < self.world.n_tracks:
                return track
            print(f"  track {track} is not in the catalog (0..{self.world.n_tracks - 1})", file=self._out)

    def end_session(self, user: int, last_track: int, last_time: float) -> None:
        print(f"session of user {user} ended after {self._describe(last_track)} "
              f"({last_time:.0%})\n", file=self._out)


def load_factory(spec: str) -> Callable[..., Any]:
    """Import ``module:function`` at run time (as uvicorn imports an app), so sim never
    imports the service's code itself."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise AgentError(f"--factory {spec!r} must look like module:function "
                         f"(e.g. service.botify:load)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise AgentError(f"--factory {spec}: cannot import module {module_name!r} ({e}); check the "
                         f"name and run from the repo root") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise AgentError(f"--factory {spec}: module {module_name!r} has no function {func_name!r}")
    return func


def inprocess_agent(factory: str, factory_args: list[str] | None = None) -> Recommender:
    """Build a recommender in this process with ``factory(*factory_args)`` and check it
    has the recommender interface."""
    obj = load_factory(factory)(*(factory_args or []))
    missing = [m for m in ("recommend_next", "end_session") if not callable(getattr(obj, m, None))]
    if missing:
        raise AgentError(f"--factory {factory} built a {type(obj).__name__} without "
                         f"{' and '.join(missing)}: it must implement the recommender interface "
                         f"(docs/architecture.md)")
    return obj


def make_agent(name: str, *, env: Any, world: World, seed: np.random.SeedSequence | int | None,
               url: str | None = None, connect_timeout: float = 2.0, read_timeout: float = 10.0,
               factory: str | None = None, factory_args: list[str] | None = None) -> Recommender:
    """Build the agent the command line names."""
    if name == "dummy":
        return DummyAgent(world.n_tracks, seed)
    if name == "oracle":
        return OracleAgent(env)
    if name == "remote":
        if not url:
            raise AgentError("the remote agent needs a service URL: pass --url or set remote.url in the config")
        return RemoteAgent(url, connect_timeout, read_timeout)
    if name == "console":
        return ConsoleAgent(world, seed)
    if name == "inprocess":
        if not factory:
            raise AgentError("the inprocess agent needs --factory module:function "
                             "(e.g. --factory service.botify:load --factory-arg service/config/cold_start.yml)")
        return inprocess_agent(factory, factory_args)
    raise AgentError(f"unknown agent {name!r}: choose one of {', '.join(AGENTS)}")
