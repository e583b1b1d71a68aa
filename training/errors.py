"""The one error a job (collect, experiment, loop) stops with.

Each step raises it with a message that says which step failed and what to do, so an
entry point can print it as it is and exit non-zero, having promoted nothing.
"""
from __future__ import annotations


class JobError(RuntimeError):
    """A step of a job cannot go on; the message names the step and the fix."""


def is_job_failure(e: BaseException) -> bool:
    """An error an entry point reports as one line and exit 2 (bad config, log, model
    reference, analysis): anything else is a bug and keeps its traceback."""
    from training.ab.stats import AnalysisError
    from training.data.events import EventLogError
    from training.registry.tracking import RegistryError
    return isinstance(e, (JobError, EventLogError, AnalysisError, RegistryError, FileNotFoundError, ValueError))
