"""Run statuses: the one place that names them and says which count as failed."""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """The status of a run, as written in the ``runs`` table (the value is the stored text).

    A ``str`` subclass, so it compares equal to the text read back from the store.
    """

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    SYSTEM_FAILURE = "system failure"
    INTERRUPTED = "interrupted"
    PAUSED = "paused"
    STOPPED = "stopped"  # cut by a search strategy at a rung: final, not a failure, can be continued

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


#: Statuses of runs that failed (the run's code raised, or its worker or the cluster died).
FAILED: tuple[str, ...] = (RunStatus.ERROR.value, RunStatus.SYSTEM_FAILURE.value)
#: Statuses of runs that have not ended (no traceback param in the legacy layout).
UNFINISHED: tuple[str, ...] = (RunStatus.PENDING.value, RunStatus.RUNNING.value, RunStatus.PAUSED.value)
#: Statuses of runs left to train: ``mosaic resume`` completes them (every other status is final).
RESUMABLE: tuple[str, ...] = (*UNFINISHED, RunStatus.INTERRUPTED.value)
#: The order statuses are listed in summaries.
ORDER: tuple[str, ...] = tuple(s.value for s in (
    RunStatus.DONE, RunStatus.STOPPED, RunStatus.ERROR, RunStatus.SYSTEM_FAILURE, RunStatus.PAUSED, RunStatus.INTERRUPTED,
    RunStatus.RUNNING, RunStatus.PENDING,
))
