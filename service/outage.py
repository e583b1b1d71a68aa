"""What the service does when something it depends on (the event log's disk, Redis) fails.

A request that cannot be served whole is refused with `Unavailable` (HTTP 503, a JSON
`{"error": ...}` and `Retry-After`), having changed nothing. An outage is logged once when
it starts and once when it ends, not once per refused request: under load a per-request
traceback buries the one line an operator needs and costs more than the refusal.
"""
from __future__ import annotations

import logging
import time

logger = logging.getLogger("botify")

RETRY_AFTER_SECONDS = 1


class Unavailable(RuntimeError):
    """A dependency failed: the request changed nothing and may be retried later (503)."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Outage:
    """The up/down state of one dependency in this process, logged on each transition only."""

    def __init__(self, name: str, log: logging.Logger = logger) -> None:
        self.name = name
        self.log = log
        self.down_since: float | None = None
        self.refused = 0  # requests refused during the current outage
        self.reason = ""

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, reason: object) -> None:
        self.refused += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.reason = str(reason)
            self.log.error("%s unavailable, refusing requests with 503 until it recovers: %s", self.name, reason)

    def ok(self) -> None:
        if self.down_since is not None:
            self.log.warning("%s recovered after %.1f s (%d request(s) refused with 503)", self.name,
                             time.monotonic() - self.down_since, self.refused)
            self.down_since = None
            self.refused = 0
            self.reason = ""
