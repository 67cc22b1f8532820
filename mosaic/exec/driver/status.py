"""Watching a store's runs: ``mosaic status`` and ``status --watch``.

Every run by its latest status; for the runs a live driver is training, their epoch k of N
and latest losses (from the history rows written live and the driver's heartbeat). A store
with search decisions (``[SEARCH] strategy = halving``) also lists its stopped runs with the
rung that stopped them, and says how many pipelines were stopped where and the epochs saved.
``mosaic run`` records its store in ``$MOSAIC_STATE_DIR/last_store`` (default
``~/.local/state/mosaic``), the default STORE of ``status``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosaic.errors import UsageError
from mosaic.exec.driver.heartbeat import live_sweeps, planned_epochs
from mosaic.search.decisions import Effort, read_effort, stopped_pipelines
from mosaic.store.reader import Reader, SessionReader, open_reader
from mosaic.store.status import FAILED, ORDER, RunStatus
from mosaic.store.writer import Store, store_at
from mosaic.text import last_line


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


@dataclass(frozen=True)
class RunState:
    """The latest state of one run."""

    run_id: int
    status: str
    pipeline: str
    return_status: str | None
    error: str | None
    attempt: int
    sweep_id: int | None


@dataclass(frozen=True)
class StatusReport:
    """Every run of a store by status; ``render()`` is the legacy ``mosaic_status`` text."""

    store: Path
    runs: tuple[RunState, ...]
    live: tuple[int, ...] = field(default=())
    progress: Mapping[int, RunProgress] = field(default_factory=dict)  # running runs: epoch k/N, losses
    search: Effort | None = None  # what a search (halving) stopped and saved; None for a full grid
    stops: Mapping[int, int] = field(default_factory=dict)  # stopped run -> the rung epoch that stopped it

    def of(self, *statuses: str) -> list[RunState]:
        """The runs whose latest status is one of ``statuses``."""
        return [r for r in self.runs if r.status in statuses]

    @property
    def stale(self) -> list[RunState]:
        """Runs left pending or running by a driver that is gone."""
        return [r for r in self.of(RunStatus.PENDING, RunStatus.RUNNING) if r.sweep_id not in self.live]

    def render(self) -> str:
        """Done (losses, time), Error (pipeline + last traceback line), Running, Pending; then
        Stopped, Paused and Interrupted when there are any, the search's line, and the counts."""
        stale = {r.run_id for r in self.stale}
        lines = ["Done"]
        lines += [f"\t[{r.run_id}] {r.return_status or ''}" for r in self.of(RunStatus.DONE)]
        lines.append("Error")
        for r in self.of(*FAILED):
            label = f" ({RunStatus.SYSTEM_FAILURE})" if r.status == RunStatus.SYSTEM_FAILURE else ""
            lines.append(f"\t[{r.run_id}] {r.pipeline}{label}")
            lines.append(f"\t\t{last_line(r.error or r.return_status or '')}")
        lines.append("Running")
        lines += [f"\t[{r.run_id}] {r.pipeline}{self._progress(r.run_id)}" for r in self.of(RunStatus.RUNNING) if r.run_id not in stale]
        lines.append("Pending")
        lines += [f"\t[{r.run_id}] {r.pipeline}" for r in self.of(RunStatus.PENDING) if r.run_id not in stale]
        stopped = self.of(RunStatus.STOPPED)
        if stopped:
            lines.append("Stopped")
            lines += [f"\t[{r.run_id}] {r.pipeline}{self._stop(r.run_id)}" for r in stopped]
        for title, runs in (("Paused", self.of(RunStatus.PAUSED)), ("Interrupted", [*self.of(RunStatus.INTERRUPTED), *self.stale])):
            if runs:
                lines.append(title)
                lines += [f"\t[{r.run_id}] {r.pipeline}" for r in sorted(runs, key=lambda r: r.run_id)]
        if self.search is not None:
            lines.append(search_line(self.search))
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        order = [s for s in ORDER if s in counts] + sorted(s for s in counts if s not in ORDER)
        summary = ", ".join(f"{counts[s]} {s}" for s in order)
        lines.append(f"({len(self.runs)} runs in {self.store}{': ' + summary if summary else ''})")
        return "\n".join(lines)

    def _stop(self, run_id: int) -> str:
        rung = self.stops.get(run_id)
        return f"  (at epoch {rung})" if rung is not None else ""

    def _progress(self, run_id: int) -> str:
        progress = self.progress.get(run_id)
        return f"  ({progress.render()})" if progress else ""


def search_line(effort: Effort) -> str:
    """``Search: stopped 4 of 6 pipelines (3 at epoch 1, 1 at epoch 3), saving 28 of 54 planned epochs (51.9%)``."""
    stopped = sum(effort.stopped.values())
    return (f"Search: stopped {stopped} of {effort.pipelines} pipelines ({effort.at_rungs()}), saving "
            f"{effort.saved} of {effort.planned} planned epochs ({effort.saved_percent:.1f}%)")


def latest_runs(store: str | os.PathLike[str] | Store, ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The latest runs row of every run (or of ``ids``), with its sweep_id, by run id."""
    with open_reader(store_at(store)) as reader:
        return reader.latest_runs(ids)


def status(store: str | os.PathLike[str] | Store | None = None) -> StatusReport:
    """The runs of ``store`` (default: the last one ``mosaic run`` used) by status."""
    target = store_at(store)
    live = tuple(live_sweeps(target))
    with open_reader(target) as reader:
        rows = reader.latest_runs()
        runs = tuple(
            RunState(r["run_id"], r["status"], r["pipeline"] or "", r["return_status"], r["error"], r["attempt"] or 0, r["sweep_id"])
            for r in rows
        )
        running = [r.run_id for r in runs if r.status == RunStatus.RUNNING and r.sweep_id in live]
        progress = live_progress(reader, target, running, live)
        searched = read_effort(reader.session if isinstance(reader, SessionReader) else target.path)
    if searched is None:
        return StatusReport(target.path, runs, live, progress)
    rows, effort = searched
    stops = {run_id: s.rung for s in stopped_pipelines(rows) for run_id in s.runs}
    return StatusReport(target.path, runs, live, progress, effort, stops)


def watch_status(store: str | os.PathLike[str] | None = None, interval: float = 2.0,
                 sleep: Callable[[float], Any] = time.sleep) -> Iterator[StatusReport]:
    """:func:`status` every ``interval`` seconds while a driver writes the store.

    Yields at least one report; the last one is taken when no live driver is left, so the
    loop ends by itself when the sweep ends (or at once when none is running).
    """
    if not interval > 0:
        raise UsageError(f"--interval must be a positive number of seconds; got {interval!r}")
    target = store_at(store)
    while True:
        report = status(target)
        yield report
        if not report.live:
            return
        sleep(interval)


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
