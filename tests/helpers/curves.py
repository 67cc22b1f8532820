"""Stores of runs with chosen loss curves, for the search tests (replay, status, report).

:func:`curve_store` writes a full grid as the driver does (planned runs and params through
``records.write_planned``, then each run's history, results and final runs row); each run is a
(dataset key, model key, test_loss per epoch) triple, replicates share both keys.
:func:`falling` draws a curve, :data:`FOUR_MODELS` is a small grid of them.
:func:`halving_store` writes what a halving sweep over the same curves leaves: the runs that
:class:`mosaic.search.halving.Halving` cuts are ``stopped`` with their history up to the rung,
and every decision is a row of the ``decisions`` table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mosaic.search.halving import Entrant
from mosaic.search.replay import replay_cuts
from mosaic.search.spec import HALVING, SearchSpec
from mosaic.store import records
from mosaic.store.status import RunStatus
from mosaic.store.writer import Store, now
from tests.helpers.scores import PROCESS, model_pipeline

#: a run: (dataset key, model key, test_loss at each epoch)
Curve = tuple[str, str, Sequence[float]]


def falling(start: float, end: float, shift: float = 0.0, epochs: int = 9) -> list[float]:
    """A loss falling geometrically from ``start`` to ``end`` over ``epochs``, plus ``shift``."""
    return [start * (end / start) ** ((e - 1) / (epochs - 1)) + shift for e in range(1, epochs + 1)]


#: four models x 2 replicates on OR over 9 epochs: "a" ahead at every epoch, then "b", "c", "d"
FOUR_MODELS: list[Curve] = [("OR", model, falling(start, start / 10)) for model, start in
                            (("a", 0.5), ("b", 0.6), ("c", 0.7), ("d", 0.8)) for _ in range(2)]


def curve_store(path: Path, runs: Sequence[Curve], failed: Sequence[int] = (),
                stop_at: Mapping[int, int] | None = None, epochs: int | None = None) -> Store:
    """A store (created at ``path``) of ``runs``, ids from 1 in order, in sweep 1, each planned
    for ``epochs`` (default: its curve's length). Runs in ``failed`` (ids) end in ``error`` with
    their history so far; runs in ``stop_at`` (id -> epoch) end ``stopped`` with their history
    up to that epoch."""
    store = Store(path, create=True)
    sweep = store.new_sweep_id()
    ids = list(store.allocate_run_ids(len(runs)))
    planned = [records.PlannedRun(run_id, 0, model_pipeline(dataset, model), epochs or len(values),
                                  total=epochs or len(values))
               for run_id, (dataset, model, values) in zip(ids, runs, strict=True)]
    records.write_planned(store, sweep, planned, seed=lambda run_id: run_id, process_raw=PROCESS)
    stamp = now()
    history, results, rows = [], [], []
    for run, (_, _, values) in zip(planned, runs, strict=True):
        kept = list(values)[:(stop_at or {}).get(run.run_id, len(values))]
        history += records.history_rows(run.run_id, 0, [
            {"epoch": epoch, "train_loss": value, "test_loss": value, "train_acc": None, "test_acc": None, "seconds": 0.1}
            for epoch, value in enumerate(kept, start=1)], stamp)
        status = RunStatus.ERROR if run.run_id in failed else (
            RunStatus.STOPPED if run.run_id in (stop_at or {}) else RunStatus.DONE)
        rows.append(records.run_row(run.run_id, 0, run.pipeline, status, run.run_id, stamp, planned_epochs=run.total,
                                    error="Traceback: boom" if status == RunStatus.ERROR else None))
        if status == RunStatus.DONE:
            results.append(records.result_row(run.run_id, 0, {"train_loss": kept[-1], "test_loss": kept[-1],
                                                              "epochs": len(kept)}, stamp))
    for table, table_rows in (("history", history), ("results", results), ("runs", rows)):
        if table_rows:
            store.append(table, table_rows, sweep)
    return store


def halving_store(path: Path, runs: Sequence[Curve], reduction_factor: int = 3, min_epochs: int = 1) -> Store:
    """What a halving sweep over ``runs`` leaves: the cut runs ``stopped`` at their rung, the
    others done, and the ``decisions`` rows of every cut."""
    spec = SearchSpec(HALVING, "test_loss", reduction_factor, min_epochs)
    entrants = [Entrant(run_id, dataset, model, len(values))
                for run_id, (dataset, model, values) in enumerate(runs, start=1)]
    histories = {run_id: [{"epoch": e, "test_loss": v} for e, v in enumerate(values, start=1)]
                 for run_id, (_, _, values) in enumerate(runs, start=1)}
    cuts, stopped = replay_cuts(spec, entrants, histories)
    store = curve_store(path, runs, stop_at=stopped)
    stamp = now()
    store.append("decisions", [{**cut.row(), "time": stamp} for cut in cuts], 1)
    return store
