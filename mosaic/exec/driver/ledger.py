"""The one writer of a sweep's ``runs`` rows: every status a run takes goes through
:class:`RunLedger`, which never overwrites a final status.

A run's rows in a sweep go ``pending`` -> ``running`` (once per start) -> one final status:
``done``, ``stopped``, ``error``, ``system failure``, ``paused`` or ``interrupted``. Once a run has its
final status, the ledger refuses any later change (:meth:`RunLedger.update` returns False
and writes nothing): a start event that arrives after the run's end, or a Ctrl-C after it
finished, cannot turn a finished run back into a running or interrupted one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from mosaic.store.records import PlannedRun, SweepRecords
from mosaic.store.status import RunStatus
from mosaic.store.writer import now

#: The statuses a run may leave: every other one ends its life in this sweep.
OPEN: tuple[RunStatus, ...] = (RunStatus.PENDING, RunStatus.RUNNING)


class RunLedger:
    """One sweep's runs rows, buffered in its :class:`~mosaic.store.records.SweepRecords`."""

    def __init__(self, records: SweepRecords) -> None:
        self.records = records
        self.final: dict[int, RunStatus] = {}

    def plan(self, runs: Sequence[PlannedRun], new_params: bool) -> None:
        """Every planned run as ``pending`` (and, ``new_params``: its params)."""
        self.records.write_planned(runs, new_params)

    def is_final(self, run_id: int) -> bool:
        """True once ``run_id`` has its final status in this sweep."""
        return run_id in self.final

    def update(self, planned: PlannedRun, status: RunStatus, stamp: dt.datetime | None = None, **fields: Any) -> bool:
        """Record that ``planned`` is now ``status`` (``fields``: return_status, worker, device,
        error, seed). False, and nothing written, when the run already has a final status."""
        if planned.run_id in self.final:
            return False
        self.records.add("runs", self.records.run_row(planned, status, stamp or now(), **fields))
        if status not in OPEN:
            self.final[planned.run_id] = status
        return True

    def status_of(self, run_id: int) -> RunStatus:
        """The final status of ``run_id``, or ``pending`` while it has none."""
        return self.final.get(run_id, RunStatus.PENDING)
