"""The one error a job (collect, experiment, loop) stops with.

Each step raises it with a message that says which step failed and what to do, so an
entry point can print it as it is and exit non-zero, having promoted nothing.
"""
from __future__ import annotations


class JobError(RuntimeError):
    """A step of a job cannot go on; the message names the step and the fix."""
