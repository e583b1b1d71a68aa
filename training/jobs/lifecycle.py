"""How an entry point stops: a cancel stops everything it started, marks its MLflow run
KILLED and promotes nothing; after any failure it proves no process of its own is left.

How users stop a job, and how each reaches every process:
- Ctrl-C in a terminal: SIGINT to the foreground process group (make, `mlflow run`, the
  entry point, the simulator). The service is in sessions of its own (BentoML), so the
  entry point stops it, in order, from its `finally`/context managers.
- `kill <pid>` (SIGTERM) of make: GNU make passes it to the recipe's command (the
  Makefile `exec`s `mlflow run`, so there is no shell in between to swallow it).
- SIGTERM to `mlflow run`: it dies without telling its child; the entry point asked the
  kernel for SIGTERM when its launcher dies (PR_SET_PDEATHSIG), so it is cancelled too.
- SIGTERM/SIGINT/SIGHUP to the entry point itself: raised as `Cancelled` where the job
  was, so every `finally` runs (the simulator killed, the service stopped, the run marked).
- SIGKILL of the entry point: nothing of ours runs; its subprocesses die with it
  (PR_SET_PDEATHSIG on each, see `service.procs.child_preexec`, and on BentoML's workers).

Everything the job starts inherits `BOTIFY_JOB=<id>` in its environment; `Job.sweep`
finds what still carries it (however re-parented), stops it and says so.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from service import procs

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_current: "Job | None" = None   # the job this process runs (one per process)
_held = 0                       # depth of `uninterrupted` sections


class Cancelled(SystemExit):
    """A stop signal, raised where the job was so that every `finally` and context manager
    runs; its exit code is the shell's for a signal (128 + number: 143 SIGTERM, 130 SIGINT)."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"cancelled by {signal.Signals(self.signum).name}"


class Job:
    """One entry point's run: its stop signals, its marker, its leftovers.

    Only the first stop signal raises: a Ctrl-C reaches both us and `mlflow run`, which
    then sends SIGTERM as well, and a second exception would cut the cleanup of the first
    short (leaving the very service it was stopping).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.marker = ""
        self.cancelled: Cancelled | None = None
        self.cancelled_at_ms = 0
        self.raised = False

    def start(self) -> "Job":
        """Take over the stop signals (a SIGHUP that `nohup` ignores stays ignored), mark the
        environment, and, under `mlflow run` (it hands us MLFLOW_RUN_ID), die with the launcher:
        a job started from a shell is stopped by signalling it, and must survive the shell
        that `nohup` started it from."""
        global _current
        if os.environ.get("MLFLOW_RUN_ID"):
            procs.die_with_parent(signal.SIGTERM)
        self.marker = procs.new_marker(procs.JOB_ENV)
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, self._on_signal)
        _current = self
        return self

    def _on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.cancelled is None:
            self.cancelled = Cancelled(signum)
            self.cancelled_at_ms = int(time.time() * 1000)
            if _held:   # inside a step that must complete or not start: raised when it ends
                print(f"[{self.name}] {name}: cancelling once the promotion step under way completes",
                      file=sys.stderr, flush=True)
                return
            print(f"[{self.name}] {name}: cancelling: stopping the service and the simulator; "
                  f"nothing will be promoted", file=sys.stderr, flush=True)
            self.raised = True
            raise self.cancelled
        print(f"[{self.name}] {name} again: already stopping", file=sys.stderr, flush=True)

    def leftovers(self) -> list[procs.Proc]:
        """The processes this job started that still run (none once it has cleaned up)."""
        return procs.marked(procs.JOB_ENV, self.marker) if self.marker else []

    def sweep(self, quiet: bool = False) -> list[procs.Proc]:
        """Stop whatever this job left running and say so; returns what was found.

        With `quiet`, says nothing when nothing was left (a job that succeeded)."""
        found = self.leftovers()
        if found:
            left = procs.stop(found, timeout=2.0)
            print(f"[{self.name}] {len(found)} process(es) of this job were still running and were stopped: "
                  + "; ".join(map(str, found)), file=sys.stderr, flush=True)
            if left:
                print(f"[{self.name}] STILL RUNNING after SIGKILL (stop them by hand): "
                      + "; ".join(map(str, left)), file=sys.stderr, flush=True)
                return found
        if found or not quiet:
            print(f"[{self.name}] checked: no process of this job is left", file=sys.stderr, flush=True)
        return found


    def mark_killed(self) -> list[str]:
        """Mark this job's MLflow runs KILLED: its own run (the one `mlflow run` handed it, or
        the last it ran) and its steps' runs that ended when the cancel came (MLflow's own
        context managers end a run FAILED on any exception); tag its run `botify.cancelled`
        with the signal. Returns the run ids marked.

        (When `mlflow run` itself caught a Ctrl-C, it marks the run FAILED after we exit:
        MLflow 3.17's `_maybe_set_run_terminated` compares the run's status string with
        integer codes, so it never sees KILLED as final. The tag still says what happened.)"""
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        try:
            client = MlflowClient()
            rid = os.environ.get("MLFLOW_RUN_ID")
            if not rid:
                last = mlflow.last_active_run()
                rid = last.info.run_id if last else None
            if not rid:
                return []
            run = client.get_run(rid)
            if self.cancelled is not None:
                client.set_tag(rid, "botify.cancelled", signal.Signals(self.cancelled.signum).name)
            runs = [run] + client.search_runs([run.info.experiment_id],
                                              f"tags.`mlflow.parentRunId` = '{rid}'", max_results=1000)
            marked = []
            for r in runs:
                ended_by_cancel = r.info.status == "FAILED" and (r.info.end_time or 0) >= self.cancelled_at_ms
                if r.info.status == "RUNNING" or ended_by_cancel:
                    client.set_terminated(r.info.run_id, "KILLED")
                    marked.append(r.info.run_id)
            return marked
        except MlflowException as e:  # the store is gone or locked: the runs stay as they are
            print(f"[{self.name}] could not mark the run KILLED: {e}", file=sys.stderr, flush=True)
            return []


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold a cancel back for a step that must complete or not start (a promotion's deploy,
    alias move and record): one that arrives meanwhile is raised when the step is over.

    (Deferred in the handler, not by blocking the signals: MLflow runs threads of its own,
    and the kernel hands a process-directed signal to any thread that does not block it.)"""
    global _held
    _held += 1
    try:
        yield
    finally:
        _held -= 1
    job = _current
    if not _held and job is not None and job.cancelled is not None and not job.raised:
        job.raised = True
        raise job.cancelled


def stop_pending() -> bool:
    """This process's job was cancelled (a signal held back by `uninterrupted`): a step
    that must complete or not start should not start."""
    return _current is not None and _current.cancelled is not None


def is_job_failure(e: BaseException) -> bool:
    """An error an entry point reports as one line and exit 2 (bad config, log, model
    reference, analysis): anything else is a bug and keeps its traceback."""
    from training.ab.stats import AnalysisError
    from training.data.events import EventLogError
    from training.errors import JobError
    from training.registry.tracking import RegistryError
    return isinstance(e, (JobError, EventLogError, AnalysisError, RegistryError, FileNotFoundError, ValueError))


def one_line_failure(what: str, work: Callable[[], object]) -> int:
    """Run a job's work; a job failure (`is_job_failure`) is one line on stderr, `what: why`,
    and exit 2."""
    try:
        work()
    except Exception as e:
        if not is_job_failure(e):
            raise
        print(f"{what}: {e}", file=sys.stderr)
        return 2
    return 0


def run_entry_point(name: str, main: Callable[[], int]) -> int:
    """Run an entry point's `main` as a cancellable job: SIGTERM/SIGINT/SIGHUP (or its
    launcher's death) stop it with every process it started, its runs are marked KILLED,
    and whatever it leaves is found and stopped. Returns the exit code.

    A cancelled job leaves with `os._exit(128 + signal)` once its cleanup is done: the
    interpreter's own teardown (torch, MLflow) takes seconds more, and a user who pressed
    Ctrl-C is owed a prompt end; nothing of ours is buffered by then."""
    job = Job(name).start()
    failed, cancelled = False, None
    try:
        code = main()
        failed = code != 0
        return code
    except Cancelled as c:
        failed, cancelled = True, c
        job.mark_killed()
        print(f"[{name}] {c}: stopped", file=sys.stderr, flush=True)
        return int(c.code)
    except SystemExit:        # argparse's --help or usage error: nothing ran
        raise
    except BaseException:
        failed = True
        raise
    finally:
        job.sweep(quiet=not failed)
        if cancelled is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(cancelled.code))
