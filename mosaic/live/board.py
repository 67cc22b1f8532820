"""The live view's aggregation model: :class:`Board`, one sweep (or one store) at a glance.

A board knows what was planned (:class:`Plan`: each run's dataset and model, by the one rule
of :func:`mosaic.sweep.dataset_and_model`, and its planned epochs) and takes what happens to
runs one call at a time (:meth:`Board.on_start`, :meth:`Board.on_epoch`, :meth:`Board.on_end`...).
Everything the page shows is kept up to date as it arrives, so showing it costs no pass over
the runs: counts per status, per (dataset, model) the replicates done, epochs trained, the
best and mean metric so far and the mean curve with its band (:mod:`mosaic.live.curves`).

Memory is bounded per run: a run keeps a fixed-size state (its last epoch's values, its best
metric, its curve at :data:`~mosaic.live.curves.POINTS` points at most), never its history.
Not thread-safe: the scheduler calls it from its event loop, ``mosaic ui`` builds a new one
under a lock.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mosaic import sweep as sweeps
from mosaic.live.curves import BandCurve, RunCurve
from mosaic.store.status import FAILED, RunStatus

#: the values an epoch brings, in the order a run keeps them
VALUES: tuple[str, ...] = ("train_loss", "test_loss", "train_acc", "test_acc", "seconds")
#: the metric the page ranks models by (lower is better), as ``mosaic verdict`` does by default
METRIC = "test_loss"
#: a run or model no plan names
UNKNOWN = "(unknown)"
#: statuses a run does not leave by itself (a new start may still follow: a run run again)
FINAL = frozenset({RunStatus.DONE, RunStatus.ERROR, RunStatus.SYSTEM_FAILURE, RunStatus.STOPPED,
                   RunStatus.INTERRUPTED, RunStatus.PAUSED})
_FAILED = frozenset(RunStatus(s) for s in FAILED)
_METRIC = VALUES.index(METRIC)
_NAN = float("nan")


class _Planned(Protocol):
    run_id: int
    pipeline: list[dict[str, Any]]
    epochs: int
    total: int | None


@dataclass(frozen=True)
class Plan:
    """What a sweep planned, in the few numbers the page needs (a plain message on the wire).

    ``groups``: the (dataset, model) pairs; ``runs``: ``(group, first run id, count, epochs,
    start)`` spans of consecutive run ids (replicates are consecutive: a plan of 100,000 runs
    is a few thousand spans), ``epochs`` the planned last epoch and ``start`` the epoch the run
    starts from (a resumed run's checkpoint).
    """

    sweep_id: int
    token: str = ""
    kind: str = ""
    config: str = ""
    started: float = 0.0
    run_files: str | None = None
    groups: tuple[tuple[str, str], ...] = ()
    runs: tuple[tuple[int, int, int, int, int], ...] = ()

    @classmethod
    def of(cls, sweep_id: int, token: str, planned: Sequence[_Planned], data_scheme: Sequence[str] = (),
           pipeline_scheme: Sequence[str] = (), **header: Any) -> Plan:
        """The plan of ``planned`` runs, named by :func:`mosaic.sweep.dataset_and_model`."""
        groups: dict[tuple[str, str], int] = {}
        labels: dict[int, int] = {}  # id(pipeline) -> group: replicates usually share the object
        spans: list[list[int]] = []
        for run in planned:
            group = labels.get(id(run.pipeline))
            if group is None:
                dataset, model = sweeps.dataset_and_model(run.pipeline, data_scheme, pipeline_scheme)
                group = groups.setdefault((dataset or UNKNOWN, model or UNKNOWN), len(groups))
                labels[id(run.pipeline)] = group
            total = run.total if run.total is not None else run.epochs
            start = max(0, total - run.epochs)
            last = spans[-1] if spans else None
            if last and (last[0], last[1] + last[2], last[3], last[4]) == (group, run.run_id, total, start):
                last[2] += 1
            else:
                spans.append([group, run.run_id, 1, total, start])
        return cls(sweep_id, token, groups=tuple(groups), runs=tuple(tuple(s) for s in spans), **header)  # type: ignore[misc]

    def message(self) -> dict[str, Any]:
        """The plan as plain data (lists, strings, numbers)."""
        return {"sweep_id": self.sweep_id, "token": self.token, "kind": self.kind, "config": self.config,
                "started": self.started, "run_files": self.run_files, "groups": [list(g) for g in self.groups],
                "runs": [list(r) for r in self.runs]}

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Plan:
        """The plan a :meth:`message` holds."""
        return cls(int(message["sweep_id"]), str(message.get("token") or ""), str(message.get("kind") or ""),
                   str(message.get("config") or ""), float(message.get("started") or 0.0), message.get("run_files"),
                   tuple((str(d), str(m)) for d, m in message.get("groups") or ()),
                   tuple((int(g), int(f), int(c), int(e), int(s)) for g, f, c, e, s in message.get("runs") or ()))


class RunState:
    """One run as the page shows it: fixed size, whatever its epochs."""

    __slots__ = ("attempt", "best", "curve", "epoch", "epochs", "error", "final", "group", "run_id", "state",
                 "sweep", "updated", "values", "worker")

    def __init__(self, run_id: int, group: int, epochs: int = 0, start: int = 0) -> None:
        self.run_id = run_id
        self.group = group
        self.state = RunStatus.PENDING
        self.attempt = 0
        self.epoch = start  # the epoch it starts from: a resumed run's checkpoint
        self.epochs = epochs
        self.values: array[float] | None = None  # the last epoch's VALUES
        self.best: float | None = None
        self.final: float | None = None  # the metric's final value of a done run (the verdict's input)
        self.worker = ""
        self.error: str | None = None
        self.updated = 0.0
        self.curve: RunCurve | None = None
        self.sweep: int | None = None  # the sweep it last ran in, when not the board's own (a store's)

    def value(self, name: str) -> float | None:
        """One of the last epoch's :data:`VALUES` (None when unknown)."""
        if self.values is None:
            return None
        value = self.values[VALUES.index(name)]
        return None if math.isnan(value) else value


class Group:
    """One (dataset, model): its replicates' counts, progress, metric and curve."""

    __slots__ = ("best", "counts", "curve", "dataset", "epochs_done", "epochs_planned", "index", "model",
                 "n_last", "planned", "sum_last")

    def __init__(self, index: int, dataset: str, model: str) -> None:
        self.index = index
        self.dataset = dataset
        self.model = model
        self.planned = 0
        self.counts = [0] * len(RunStatus)
        self.epochs_planned = 0
        self.epochs_done = 0
        self.best: float | None = None
        self.sum_last = 0.0  # sum and count of the replicates' latest metric (the mean so far)
        self.n_last = 0
        self.curve: BandCurve | None = None

    def count(self, status: RunStatus) -> int:
        """How many of its runs have ``status``."""
        return self.counts[_INDEX[status]]

    @property
    def mean(self) -> float | None:
        """The mean of its replicates' latest metric."""
        return self.sum_last / self.n_last if self.n_last else None


_INDEX = {status: i for i, status in enumerate(RunStatus)}


@dataclass
class Board:
    """A sweep (or a store) at a glance; see the module's docstring."""

    sweep_id: int | None = None
    token: str = ""
    kind: str = ""
    config: str = ""
    started: float | None = None
    ended: float | None = None
    run_files: str | None = None
    runs: dict[int, RunState] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    counts: list[int] = field(default_factory=lambda: [0] * len(RunStatus))
    failures: dict[int, None] = field(default_factory=dict)  # failed runs, latest last
    decisions: list[dict[str, Any]] = field(default_factory=list)
    decisions_total: int = 0
    epochs_trained: int = 0  # epochs trained by this sweep (the ETA's rate)
    epochs_left: int = 0  # epochs the runs not ended still have to train
    first_epoch_at: float | None = None
    updated: float = 0.0
    version: int = 0  # changes with every change: caches compare it
    finals_version: int = 0  # changes when a done run's final metric may have changed (the verdict's input)
    store: str | None = None  # the store a board of ``mosaic ui`` shows
    sweeps: int = 1

    def __post_init__(self) -> None:
        self._groups: dict[tuple[str, str], int] = {}

    # -- what a sweep planned ---------------------------------------------------------------
    def group(self, dataset: str, model: str) -> Group:
        """The group of (dataset, model), created when new."""
        index = self._groups.get((dataset, model))
        if index is None:
            index = self._groups[(dataset, model)] = len(self.groups)
            self.groups.append(Group(index, sys.intern(dataset), sys.intern(model)))
        return self.groups[index]

    def apply(self, plan: Plan) -> None:
        """Take the plan: every planned run, pending, in its group."""
        self.sweep_id, self.token, self.kind, self.config = plan.sweep_id, plan.token, plan.kind, plan.config
        self.started, self.run_files = plan.started or None, plan.run_files
        indexes = [self.group(d, m).index for d, m in plan.groups]
        for group, first, count, epochs, start in plan.runs:
            for run_id in range(first, first + count):
                self.add_run(run_id, indexes[group], RunStatus.PENDING, epochs, start)
        self.version += 1

    def add_run(self, run_id: int, group: int, state: RunStatus, epochs: int, start: int = 0) -> RunState:
        """A run of ``group`` (replaced if known), counted as ``state``."""
        if run_id in self.runs:
            self._forget(self.runs[run_id])
        run = self.runs[run_id] = RunState(run_id, group, epochs, start)
        target = self.groups[group]
        target.planned += 1
        target.epochs_planned += max(0, epochs)
        target.epochs_done += start
        run.state = state
        self._count(run, +1)
        if state not in FINAL:
            self.epochs_left += max(0, epochs - start)
        return run

    def load_run(self, run_id: int, group: int, state: RunStatus, epochs: int, *, epoch: int = 0, attempt: int = 0,
                 values: Sequence[float | None] | None = None, best: float | None = None, final: float | None = None,
                 worker: str = "", error: str | None = None, updated: float = 0.0, sweep: int | None = None) -> RunState:
        """A run read from a store, at once: its last ``epoch`` with its :data:`VALUES`."""
        run = self.add_run(run_id, group, state, epochs, start=epoch)
        run.attempt, run.worker, run.error, run.updated, run.final = attempt, sys.intern(worker), error, updated, final
        run.sweep = sweep
        if values is not None:
            self._values(run, self.groups[group], values)
        if best is not None and math.isfinite(best):
            run.best = best
            target = self.groups[group]
            target.best = best if target.best is None else min(target.best, best)
        return run

    def _forget(self, run: RunState) -> None:
        target = self.groups[run.group]
        target.planned -= 1
        target.epochs_planned -= max(0, run.epochs)
        target.epochs_done -= run.epoch
        if run.state not in FINAL:
            self.epochs_left -= max(0, run.epochs - run.epoch)
        self._count(run, -1)
        last = run.value(METRIC)
        if last is not None:
            target.sum_last -= last
            target.n_last -= 1

    def _count(self, run: RunState, step: int) -> None:
        self.counts[_INDEX[run.state]] += step
        self.groups[run.group].counts[_INDEX[run.state]] += step
        if run.state in _FAILED:
            if step > 0:
                self.failures[run.run_id] = None
            else:
                self.failures.pop(run.run_id, None)

    def run(self, run_id: int) -> RunState:
        """The state of ``run_id``; a run no plan named goes to the unknown group."""
        run = self.runs.get(run_id)
        if run is None:
            run = self.add_run(run_id, self.group(UNKNOWN, UNKNOWN).index, RunStatus.PENDING, 0)
        return run

    # -- what happens -------------------------------------------------------------------------
    def set_state(self, run: RunState, state: RunStatus, now: float) -> None:
        """Move ``run`` to ``state``, keeping every count right."""
        if state == run.state:
            return
        if RunStatus.DONE in (state, run.state):
            self.finals_version += 1
        if run.state in FINAL and state not in FINAL:
            self.epochs_left += max(0, run.epochs - run.epoch)
        elif run.state not in FINAL and state in FINAL:
            self.epochs_left -= max(0, run.epochs - run.epoch)
        self._count(run, -1)
        run.state = state
        self._count(run, +1)
        self._touch(run, now)

    def _touch(self, run: RunState, now: float) -> None:
        run.updated = now
        self.updated = now
        self.version += 1

    def on_start(self, run_id: int, worker: str, now: float) -> None:
        """``run_id`` started on ``worker``."""
        run = self.run(run_id)
        if self.started is None:
            self.started = now
        run.worker = sys.intern(worker) if worker else run.worker
        run.error = None
        self.set_state(run, RunStatus.RUNNING, now)

    def on_epoch(self, run_id: int, attempt: int, epoch: int, epochs: int, values: Mapping[str, float | None],
                 now: float) -> None:
        """``run_id`` trained ``epoch`` of ``epochs`` (its planned last) with these ``values``."""
        run = self.run(run_id)
        if attempt < run.attempt or (attempt == run.attempt and epoch <= run.epoch and run.values is not None):
            return  # an epoch told twice (a run continued from an earlier checkpoint adds nothing)
        if run.state not in FINAL:
            self.epochs_left -= max(0, run.epochs - run.epoch)
        group = self.groups[run.group]
        epochs = epochs or run.epochs
        group.epochs_done += epoch - run.epoch
        group.epochs_planned += max(epochs, 0) - max(run.epochs, 0)
        self.epochs_trained += max(0, epoch - run.epoch)
        if self.first_epoch_at is None:
            self.first_epoch_at = now
        run.attempt, run.epoch, run.epochs = attempt, epoch, epochs
        if run.state not in FINAL:
            self.epochs_left += max(0, run.epochs - run.epoch)
        self._values(run, group, [values.get(name) for name in VALUES])
        self._curves(run, group, epoch, values.get("train_loss"), values.get("test_loss"))
        if run.state == RunStatus.PENDING:
            self.set_state(run, RunStatus.RUNNING, now)
        self._touch(run, now)

    def _values(self, run: RunState, group: Group, values: Sequence[float | None]) -> None:
        previous = run.value(METRIC)
        run.values = array("f", [_NAN if v is None or not math.isfinite(v) else v for v in values])
        metric = run.value(METRIC)
        if previous is not None:
            group.sum_last -= previous
            group.n_last -= 1
        if metric is not None:
            group.sum_last += metric
            group.n_last += 1
            run.best = metric if run.best is None else min(run.best, metric)
            group.best = metric if group.best is None else min(group.best, metric)

    def _curves(self, run: RunState, group: Group, epoch: int, train: float | None, test: float | None) -> None:
        if run.epochs < 1:
            return
        if run.curve is None or run.curve.epochs != run.epochs:
            run.curve = RunCurve(run.epochs)
        run.curve.add(epoch, train, test)
        if group.curve is None:
            group.curve = BandCurve(run.epochs)
        group.curve.add(epoch, train, test)

    def on_end(self, run_id: int, status: RunStatus, now: float, error: str | None = None, worker: str = "") -> None:
        """``run_id`` ended with ``status`` (``error``: the last line of its traceback)."""
        run = self.run(run_id)
        run.worker = sys.intern(worker) if worker else run.worker
        run.error = error or None
        if status == RunStatus.DONE:
            run.final = run.value(METRIC)
            self.finals_version += 1
        self.set_state(run, status, now)
        if run.state in _FAILED:  # the latest failure goes last
            self.failures.pop(run_id, None)
            self.failures[run_id] = None

    def close(self, now: float, state: RunStatus = RunStatus.INTERRUPTED) -> None:
        """The sweep ended: runs still pending or running did not finish in it."""
        self.ended_at(now)
        for run in [r for r in self.runs.values() if r.state not in FINAL]:
            self.set_state(run, state, now)

    def ended_at(self, now: float) -> None:
        """Note when the sweep ended."""
        self.ended = now
        self.version += 1

    # -- what the page reads ------------------------------------------------------------------
    def count(self, status: RunStatus) -> int:
        """How many runs have ``status``."""
        return self.counts[_INDEX[status]]

    @property
    def finished(self) -> bool:
        """True when no run is pending or running."""
        return all(self.counts[_INDEX[s]] == 0 for s in RunStatus if s not in FINAL)

    def finals(self) -> Iterator[tuple[str, str, float]]:
        """``(dataset, model, final metric)`` of every done run that has one (the verdict's input)."""
        groups = self.groups
        for run in self.runs.values():
            if run.state == RunStatus.DONE and run.final is not None and math.isfinite(run.final):
                group = groups[run.group]
                yield group.dataset, group.model, run.final

    def failed(self) -> Iterable[RunState]:
        """The failed runs, the latest failure first."""
        return (self.runs[run_id] for run_id in reversed(self.failures))
