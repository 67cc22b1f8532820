"""What a sweep does with a run whose task came back without its outcome: the fault policy.

Pure (no I/O, no clock): :class:`FaultPolicy` takes what the driver knows of a task that
failed to bring a run's outcome back, and answers with a :class:`Decision`. The sweep carries
it out (submits again, records a ``system failure``, warns). The rules:

- the run **ended** in that task (its end event came) but the result was lost with its
  worker: run it again from its checkpoint, to its planned total (:attr:`Decision.CONTINUE`);
- the run was in a **batch** whose worker died: submit it again, from now on alone in its
  task (:attr:`Decision.ALONE`), since the records of a worker's last milliseconds may die
  with it and a run is blamed only when it ran alone;
- alone and **never started** in that task: submit it again (:attr:`Decision.AGAIN`);
- alone and **started**: it was training when its worker died (:attr:`Decision.DIED`).

A run is submitted again at most :data:`MAX_RESUBMITS` times; after that it fails
(:attr:`Decision.DIED`, or :attr:`Decision.LOST` when its result was lost every time).
"""

from __future__ import annotations

import collections
import enum

#: A run whose worker died before it started is submitted again at most this often.
MAX_RESUBMITS = 3


class Decision(enum.Enum):
    """What to do with one run of a task that did not bring its outcome back."""

    AGAIN = "submit again"
    ALONE = "submit again, alone in its task"
    CONTINUE = "run again from its checkpoint to its planned total"
    DIED = "failed: its worker died while running it"
    LOST = "failed: its result was lost every time"

    @property
    def resubmit(self) -> bool:
        """True when the run goes back in the queue."""
        return self in (Decision.AGAIN, Decision.ALONE, Decision.CONTINUE)


class FaultPolicy:
    """The resubmission rules of one sweep, and what they have decided so far."""

    def __init__(self, max_resubmits: int = MAX_RESUBMITS) -> None:
        self.max_resubmits = max_resubmits
        self.resubmits: collections.Counter[int] = collections.Counter()  # run -> times submitted again
        self.lost: set[int] = set()  # runs trained before whose result was lost: they continue
        self.alone: set[int] = set()  # runs of a batch whose worker died: one per task from now on

    def worker_died(self, run_id: int, *, ended_in_task: bool, started_in_task: bool, in_batch: bool) -> Decision:
        """A run of a task whose worker died: ``ended_in_task``/``started_in_task``: its end or
        start event came from that task; ``in_batch``: the task held other runs too."""
        if ended_in_task:
            return self.result_lost(run_id)
        if in_batch and self._count(run_id):
            self.alone.add(run_id)
            return Decision.ALONE
        if not started_in_task and self._count(run_id):
            return Decision.AGAIN
        return Decision.DIED

    def result_lost(self, run_id: int) -> Decision:
        """A run that finished on a worker that died before its result came back."""
        if self._count(run_id):
            self.lost.add(run_id)
            return Decision.CONTINUE
        return Decision.LOST

    def continues(self, run_id: int) -> bool:
        """True when ``run_id`` trained before and must continue from its checkpoint."""
        return run_id in self.lost

    def may_share(self, *run_ids: int) -> bool:
        """True when these runs may share a task (none must run alone)."""
        return not self.alone.intersection(run_ids)

    def _count(self, run_id: int) -> bool:
        if self.resubmits[run_id] >= self.max_resubmits:
            return False
        self.resubmits[run_id] += 1
        return True
