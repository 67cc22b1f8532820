"""Live history: the epochs workers publish as they end, turned into the store's history rows.

Channel: each run's :class:`mosaic.exec.dashboard.EpochReporter` (a training callback) hands a
small record per epoch to its worker's :class:`mosaic.exec.dashboard.Announcer`, which sends
them on the sweep's topic with Dask's ``Worker.log_event`` (at most every half second, and at
each run's start); the scheduler hands them to the Mosaic page and to every client subscribed
to the topic. The driver puts the epoch records in :attr:`LiveHistory.events` and calls
:meth:`LiveHistory.drain` in its loop, which buffers one history row per new epoch; the driver's
buffer is flushed about once a second, so a killed driver loses at most the last second.

No epoch is written twice by one attempt: when the attempt ends, :meth:`LiveHistory.unwritten`
gives only the epochs that did not come live (those of earlier attempts restored from the
checkpoint, or events lost with a dead connection), and a late event for an epoch already
written is dropped.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mosaic.store.files import read_json
from mosaic.store.reader import Reader
from mosaic.store.records import history_rows
from mosaic.store.writer import Store, now

#: The values an epoch event carries into its history row.
FIELDS = ("train_loss", "test_loss", "train_acc", "test_acc", "seconds")


class LiveHistory:
    """One sweep's epoch events -> history rows, without duplicates per (run, attempt)."""

    def __init__(self, add_row: Callable[[dict[str, Any]], None], attempts: Mapping[int, int]) -> None:
        """``add_row``: buffers one history row; ``attempts``: the planned attempt of each run id."""
        self.add_row = add_row
        self.attempts = attempts
        self.events: collections.deque[dict[str, Any]] = collections.deque()
        self.written: dict[tuple[int, int], set[int]] = collections.defaultdict(set)
        #: run id -> (last epoch, planned last epoch) of the runs training now
        self.progress: dict[int, tuple[int, int]] = {}

    def drain(self) -> int:
        """Buffer a history row for every new epoch received; returns how many."""
        added = 0
        while self.events:
            msg = self.events.popleft()
            try:
                run_id, attempt, epoch = int(msg["run_id"]), int(msg["attempt"]), int(msg["epoch"])
            except (KeyError, TypeError, ValueError):
                continue
            if self.attempts.get(run_id) != attempt or epoch in self.written[(run_id, attempt)]:
                continue
            self.written[(run_id, attempt)].add(epoch)
            row = {"epoch": epoch, **{k: msg.get(k) for k in FIELDS}}
            self.add_row(history_rows(run_id, attempt, [row], now())[0])
            self.progress[run_id] = (epoch, int(msg.get("epochs") or epoch))
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


# -- reading it back (status) ------------------------------------------------------------------
@dataclass(frozen=True)
class RunProgress:
    """How far a running run is: its last epoch stored, the planned last epoch, its losses."""

    epoch: int
    epochs: int | None
    train_loss: float | None
    test_loss: float | None

    def render(self) -> str:
        """``epoch 3/40  train_loss 0.1234  test_loss 0.2345``."""
        text = f"epoch {self.epoch}/{self.epochs}" if self.epochs else f"epoch {self.epoch}"
        for name, value in (("train_loss", self.train_loss), ("test_loss", self.test_loss)):
            if value is not None:
                text += f"  {name} {value:.4g}"
        return text


def planned_epochs(store: Store, sweeps: Iterable[int]) -> dict[int, int]:
    """run id -> planned last epoch, from the heartbeats of the drivers of ``sweeps``."""
    planned: dict[int, int] = {}
    for sweep_id in sweeps:
        info = read_json(store.heartbeat(sweep_id)) or {}
        for run_id, pair in (info.get("progress") or {}).items():
            with contextlib.suppress(TypeError, ValueError, IndexError):
                planned[int(run_id)] = int(pair[1])
    return planned


def live_progress(reader: Reader, store: Store, running: Sequence[int], sweeps: Iterable[int]) -> dict[int, RunProgress]:
    """The progress of the ``running`` runs (those of live ``sweeps``) from the stored history."""
    if not running:
        return {}
    planned = planned_epochs(store, sweeps)
    last: dict[int, dict[str, Any]] = {}
    for row in reader.history(list(running)).to_pylist():
        last[row["run_id"]] = row  # rows come by run then epoch: the last one stays
    return {
        run_id: RunProgress(int(row["epoch"]), planned.get(run_id), row["train_loss"], row["test_loss"])
        for run_id, row in last.items()
    }
