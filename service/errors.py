"""A request the service refuses (4xx), apart from the logic that decides it, so the HTTP
layer can name it without loading that logic in BentoML's server process (service/config.py)."""
from __future__ import annotations


class RequestError(ValueError):
    """A request the service refuses: answered with `status` and a JSON body saying why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
