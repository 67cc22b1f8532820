"""Live history: the epochs workers publish as they end, turned into the store's history rows.

Channel: each run's :class:`~mosaic.exec.cluster.announcer.EpochReporter` (a training
callback) hands an epoch :class:`~mosaic.exec.wire.events.RunEvent` to its worker's
:class:`~mosaic.exec.cluster.announcer.Announcer`, which sends them on the sweep's topic with
Dask's ``Worker.log_event`` (at most every half second, and at each run's start); the
scheduler hands them to the Mosaic page and to every client subscribed to the topic. The
driver puts the epoch records in :attr:`LiveHistory.events` and calls
:meth:`LiveHistory.drain` in its loop, which buffers one history row per new epoch; the driver's
buffer is flushed about once a second, so a killed driver loses at most the last second.

No epoch is written twice by one attempt: when the attempt ends, :meth:`LiveHistory.unwritten`
gives only the epochs that did not come live (those of earlier attempts restored from the
checkpoint, or events lost with a dead connection), and a late event for an epoch already
written is dropped.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mosaic.exec.wire.events import END, EPOCH_FIELDS, RunEvent
from mosaic.store.records import history_rows
from mosaic.store.writer import now


class LiveHistory:
    """One sweep's epoch events -> history rows, without duplicates per (run, attempt)."""

    def __init__(self, add_row: Callable[[dict[str, Any]], None], attempts: Mapping[int, int]) -> None:
        """``add_row``: buffers one history row; ``attempts``: the planned attempt of each run id."""
        self.add_row = add_row
        self.attempts = attempts
        self.events: collections.deque[RunEvent] = collections.deque()  # epoch events received
        self.written: dict[tuple[int, int], set[int]] = collections.defaultdict(set)
        #: run id -> (last epoch, planned last epoch) of the runs training now
        self.progress: dict[int, tuple[int, int]] = {}

    def drain(self) -> int:
        """Buffer a history row for every new epoch received; returns how many."""
        added = 0
        while self.events:
            event = self.events.popleft()
            run_id, attempt, epoch = event.run_id, event.attempt, event.epoch
            if self.attempts.get(run_id) != attempt or epoch in self.written[(run_id, attempt)]:
                continue
            self.written[(run_id, attempt)].add(epoch)
            row = {"epoch": epoch, **{k: event.value(k) for k in EPOCH_FIELDS}}
            self.add_row(history_rows(run_id, attempt, [row], now())[0])
            self.progress[run_id] = (epoch, event.epochs or epoch)
            added += 1
        return added

    def unwritten(self, run_id: int, attempt: int, history: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
        """The epochs of a finished attempt's history not yet written live (now marked written)."""
        self.progress.pop(run_id, None)
        written = self.written[(run_id, attempt)]
        rows = [dict(row) for row in history or () if int(row["epoch"]) not in written]
        written.update(int(row["epoch"]) for row in rows)
        return rows

    def ended(self, run_id: int) -> None:
        """The run ended without an outcome (failed, cancelled): it trains no more."""
        self.progress.pop(run_id, None)


class RunStarts:
    """The starts and ends the workers announced, as the driver's loop takes them in.

    :attr:`events` receives start and end :class:`~mosaic.exec.wire.events.RunEvent` records
    (on the client's event loop: it only appends); :meth:`drain` takes them in on the
    driver's thread. What it keeps answers the fault policy's questions: did a run start, or
    end, in a given task (:meth:`started_in`, :meth:`ended_in`), and on which worker.
    """

    def __init__(self) -> None:
        self.events: collections.deque[RunEvent] = collections.deque()
        self.seen: dict[int, RunEvent] = {}  # run -> its latest start
        self.ended: dict[int, str] = {}  # run -> the task key it last ended in

    def drain(self) -> list[RunEvent]:
        """The start events received since the last call, in order (ends are only noted)."""
        starts = []
        while self.events:
            event = self.events.popleft()
            if event.kind == END:
                self.ended[event.run_id] = event.key
            else:
                self.seen[event.run_id] = event
                starts.append(event)
        return starts

    def started_in(self, run_id: int, key: str) -> bool:
        """True when ``run_id`` last started in the task ``key``."""
        seen = self.seen.get(run_id)
        return seen is not None and seen.key == key

    def ended_in(self, run_id: int, key: str) -> bool:
        """True when ``run_id`` last ended in the task ``key``."""
        return self.ended.get(run_id) == key

    def worker(self, run_id: int) -> str | None:
        """The worker ``run_id`` last started on (None when no start came)."""
        seen = self.seen.get(run_id)
        return seen.worker if seen is not None else None

    def device(self, run_id: int) -> str | None:
        """The device ``run_id`` last started on (None when no start came, or none named)."""
        seen = self.seen.get(run_id)
        return (seen.device or None) if seen is not None else None
