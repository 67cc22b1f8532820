"""Test stores, built row by row with the store's own writer (without training anything).

Rows come from the row builders of :mod:`mosaic.store.records` (the ones the driver uses)
and go through ``Store.append``, so these stores change when the writer does. A sweep writes a ``sweeps`` row, ``pending`` runs rows and the params of every planned run
(legacy params as text, ``pipeline`` JSON, PROCESS values, ``database_path``); each run
then gets ``running`` and ``done``/``error`` rows, and a done run its history (every epoch
of the attempt at once) and one results row; the sweep ends with a superseding sweeps row.

Also here: the columns of every view (:data:`VIEW_COLUMNS`), the store states every reader
must handle (:data:`STORE_STATES`, :func:`store_in_state`), a store of twelve runs for the
analysis tests (:func:`analysis_store`) and rows read straight from a store's Parquet files
(:func:`parquet_rows`, :func:`latest_runs`).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from mosaic.analysis.legacy import import_db
from mosaic.store import records
from mosaic.store.reader import open_reader
from mosaic.store.writer import Store, now
from tests.helpers import LEGACY_DB, LEGACY_RUNS

#: the longest any wait on a background writer may take (a hang fails instead of blocking the suite)
WAIT_S = 300.0

PROCESS = {"lr": "1e-2", "epochs": "3", "loss_function": "MSELoss", "data_scheme": "dataset",
           "pipeline_scheme": "mlp", "run_files_path": "runs"}
TRACEBACK = 'Traceback (most recent call last):\n  File "mlp.py", line 4, in forward\nRuntimeError: boom\n'


def pipeline(model: str = "mlp_brick", width: int = 2, key: str | None = None) -> list[dict[str, Any]]:
    """A legacy-shaped pipeline: dataset_OR then one mlp section (``width`` a range value)."""
    return [
        {"type": "dataset", "class": "dataset_OR", "path_to_class": "./dataset.py", "batch_size": "4",
         "data_size": "80", "train_prop": "0.8", "key": "data_dataset_OR"},
        {"type": "mlp", "class": model, "path_to_class": "./mlp.py", "key": key or f"{model[4:]}_{width}",
         "length": "2", "width": width, "name": model},
    ]


def curve(run_id: int, epochs: int, attempt: int = 0) -> list[dict[str, Any]]:
    """Deterministic per-epoch rows (epoch 1-based)."""
    rows = []
    for epoch in range(1, epochs + 1):
        train = 1.0 / (epoch + run_id) + 0.01 * attempt
        rows.append({"epoch": epoch, "train_loss": train, "test_loss": train + 0.1, "train_acc": 50.0 + epoch,
                     "test_acc": 40.0 + epoch, "seconds": 0.01})
    return rows


class SweepWriter:
    """One sweep's partition, written like the driver does."""

    def __init__(self, store: Store, kind: str = "run") -> None:
        self.store = store
        self.kind = kind
        self.sweep_id = store.new_sweep_id()
        self.started = now()
        self.pipelines: dict[int, list[dict[str, Any]]] = {}
        self.attempts: dict[int, int] = {}
        self._sweep_row(ended=False)

    def _sweep_row(self, ended: bool) -> None:
        self.store.append("sweeps", [records.sweep_row(
            self.sweep_id, self.kind, config_path="config.ini", config_text="[PROCESS]", started=self.started,
            ended=ended, store_path=self.store.path, host="test",
        )], self.sweep_id)

    def plan(self, pipelines: Sequence[list[dict[str, Any]]], params: bool = True) -> list[int]:
        """Allocate ids; write pending runs rows and (unless a rerun) the params rows."""
        ids = list(self.store.allocate_run_ids(len(pipelines)))
        planned = [records.PlannedRun(run_id, 0, pipe, 3) for run_id, pipe in zip(ids, pipelines, strict=True)]
        for run in planned:
            self.pipelines[run.run_id] = run.pipeline
            self.attempts[run.run_id] = 0
        records.write_planned(self.store, self.sweep_id, planned, seed=lambda run_id: run_id,
                              process_raw=PROCESS if params else None)
        return ids

    def adopt(self, run_id: int, pipe: list[dict[str, Any]], attempt: int) -> None:
        """Take over an existing run for a rerun (its next attempt)."""
        self.pipelines[run_id] = pipe
        self.attempts[run_id] = attempt
        self._status(run_id, "pending")

    def _status(self, run_id: int, status: str, **extra: Any) -> None:
        row = records.run_row(run_id, self.attempts[run_id], self.pipelines[run_id], status, run_id, now(),
                              worker="tcp://127.0.0.1:1", device="cpu", **extra)
        self.store.append("runs", [row], self.sweep_id)

    def start(self, run_id: int) -> None:
        self._status(run_id, "running")

    def finish(self, run_id: int, epochs: int = 3) -> None:
        """History, results and the ``done`` row of one run."""
        attempt = self.attempts[run_id]
        history = curve(run_id, epochs, attempt)
        stamp = now()
        self.store.append("history", records.history_rows(run_id, attempt, history, stamp), self.sweep_id)
        train = [r["train_loss"] for r in history]
        test = [r["test_loss"] for r in history]
        k = max(1, epochs // 10)
        grads = [b - a for a, b in zip(train, train[1:], strict=False)][-k:]
        slope = sum(grads) / len(grads) if grads else None
        spread = max(train + test) - min(train + test)
        self.store.append("results", [records.result_row(run_id, attempt, {
            "train_loss": train[-1], "test_loss": test[-1],
            "train_acc": history[-1]["train_acc"], "test_acc": history[-1]["test_acc"], "nb_params": 10 + run_id,
            "duration_s": 0.5 + run_id / 100, "epochs": epochs,
            "overfit": abs(test[-1] - train[-1]) / spread if spread else None,
            "trainability": sum(test) / len(test), "slope": slope, "slope_std_plus": 0.0, "slope_std_minus": 0.0,
        }, stamp)], self.sweep_id)
        status = f"train_loss={train[-1]:.3E}\ttest_loss={test[-1]:.3E}\texecution_time={0.5:.3E}"
        self._status(run_id, "done", return_status=status)

    def fail(self, run_id: int, error: str = TRACEBACK) -> None:
        self._status(run_id, "error", return_status=error, error=error)

    def end(self) -> None:
        self._sweep_row(ended=True)


def writing_thread(writer: SweepWriter, widths: range, failures: list[BaseException]) -> threading.Thread:
    """A thread (not started) that plans, starts and finishes one run per width, as a sweep
    writing its rows; any exception lands in ``failures``."""

    def write() -> None:
        try:
            for width in widths:
                (run_id,) = writer.plan([pipeline("mlp_brick", width)])
                writer.start(run_id)
                writer.finish(run_id)
        except BaseException as exc:  # surfaced by the caller's assertion
            failures.append(exc)

    return threading.Thread(target=write, daemon=True)


def build_store(store: Store, widths: Sequence[int] = (2, 3, 4, 10), failing: int = 1, epochs: int = 3) -> list[int]:
    """A finished sweep: one done mlp_brick run per width, then ``failing`` mlp_broken runs."""
    writer = SweepWriter(store)
    pipes = [pipeline("mlp_brick", w) for w in widths] + [pipeline("mlp_broken", 2, key="broken")] * failing
    ids = writer.plan(pipes)
    for run_id in ids:
        writer.start(run_id)
        if writer.pipelines[run_id][1]["class"] == "mlp_broken":
            writer.fail(run_id)
        else:
            writer.finish(run_id, epochs=epochs)
    writer.end()
    return ids


def rerun(store: Store, run_ids: Sequence[int], epochs: int) -> SweepWriter:
    """A rerun sweep: each run's next attempt rewrites every epoch (more of them)."""
    with_attempts = _latest(store, run_ids)
    writer = SweepWriter(store, kind="rerun")
    for run_id, (pipe, attempt) in with_attempts.items():
        writer.adopt(run_id, pipe, attempt + 1)
        writer.start(run_id)
        writer.finish(run_id, epochs=epochs)
    writer.end()
    return writer


def _latest(store: Store, run_ids: Sequence[int]) -> dict[int, tuple[list[dict[str, Any]], int]]:
    with open_reader(store) as reader:
        return {row["run_id"]: (json.loads(row["pipeline_json"]), row["attempt"]) for row in reader.latest_runs(run_ids)}


def is_close(a: float | None, b: float | None) -> bool:
    """Float equality that treats two nulls as equal."""
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12)


# -- the views' columns, in the original's order ----------------------------------------------
RUNS_COLUMNS = ["run_id", "status", "pipeline", "return_status", "attempt", "pipeline_json", "worker",
                "device", "error", "seed", "planned_epochs", "sweep_id", "time"]
RUN_RESULTS_COLUMNS = ["run_id", "train_loss", "test_loss", "train_acc", "test_acc", "nb_params", "duration(s)",
                       "epochs", "overfit", "trainability", "slope", "slope_std_plus", "slope_std_minus", "attempt"]
VIEW_COLUMNS = {
    "params": ["run_id", "param_name", "param_value"],
    "runs": RUNS_COLUMNS,
    "run_results": RUN_RESULTS_COLUMNS,
    "system": ["param_name", "param_value"],
    "history": ["run_id", "epoch", "attempt", "train_loss", "test_loss", "train_acc", "test_acc", "seconds",
                "time", "sweep_id"],
    "sweeps": ["sweep_id", "kind", "config_path", "config", "started", "ended", "host", "mosaic_version",
               "torch_version", "dask_version", "python_version", "store_path", "time"],
    "results": ["run_id", "attempt", "train_loss", "test_loss", "train_acc", "test_acc", "nb_params", "duration_s",
                "epochs", "overfit", "trainability", "slope", "slope_std_plus", "slope_std_minus", "time", "sweep_id"],
}


# -- the states every store reader must handle ---------------------------------------------------
def busy_store(path: Path) -> Store:
    """Two sweeps of small files, a rerun, superseding params, a sweep still open."""
    store = Store(path, create=True)
    build_store(store, widths=(2, 3, 4))
    build_store(store, widths=(5, 6), failing=0, epochs=4)
    rerun(store, [1, 6], epochs=6)
    writer = SweepWriter(store)
    store.append("params", [{"run_id": 2, "param_name": "mlp_key", "param_value": "renamed"}], writer.sweep_id)
    (pending, running) = writer.plan([pipeline("mlp_brick", 8), pipeline("mlp_brick", 9)])
    writer.start(running)
    return store


STORE_STATES = ["empty", "mid-sweep", "compacted", "imported"]


@contextlib.contextmanager
def store_in_state(kind: str, path: Path) -> Iterator[Path]:
    """A store at ``path`` in one of the states every reader must handle (:data:`STORE_STATES`);
    for ``mid-sweep``, files keep arriving from a background writer while the body runs."""
    if kind == "empty":
        Store(path, create=True)
    elif kind == "compacted":
        busy_store(path).compact()
    elif kind == "imported":
        import_db(LEGACY_DB, path, history_dir=LEGACY_RUNS)
    elif kind != "mid-sweep":
        raise ValueError(f"unknown store state {kind!r}")
    if kind != "mid-sweep":
        yield path
        return
    writer = SweepWriter(busy_store(path))
    stop = threading.Event()

    def write() -> None:
        width = 100
        while not stop.wait(timeout=0.005):
            (run_id,) = writer.plan([pipeline("mlp_brick", width)])
            writer.start(run_id)
            writer.finish(run_id)
            width += 1

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(timeout=WAIT_S)
        assert not thread.is_alive(), "the background writer did not stop"


# -- a store for the analysis tests --------------------------------------------------------------
def _analysis_pipeline(family: str, width: int) -> list[dict]:
    return [
        {"type": "dataset", "class": "dataset_OR", "path_to_class": "./dataset.py", "batch_size": "1",
         "data_size": "200", "train_prop": "0.8", "key": "dataset_OR"},
        {"type": "mlp", "class": family, "path_to_class": "./mlp.py", "key": family, "length": "4",
         "width": width, "name": family},
    ]


def analysis_store(path: Path, spec: list[tuple[str, int, str]], epochs: int = 5, no_history: tuple[int, ...] = ()) -> Path:
    """A store of runs (family, width, status) written with the store's own row builders."""
    store = Store(path, create=True)
    sweep = store.new_sweep_id()
    ids = list(store.allocate_run_ids(len(spec)))
    runs, params, results, history = [], [], [], []
    for run_id, (family, width, status) in zip(ids, spec, strict=True):
        pipe = _analysis_pipeline(family, width)
        stamp = now()
        runs.append(records.run_row(run_id, 1, pipe, status, None, stamp,
                                    error=None if status == "done" else "Traceback: boom"))
        params += [{"run_id": run_id, "param_name": n, "param_value": v, "time": stamp}
                   for n, v in records.param_pairs(pipe, {}, store.path)]
        if status != "done":
            continue
        nb = 4 * width * width + 3 * width + 1
        final = 1.0 / width + run_id / 1000
        results.append(records.result_row(run_id, 1, {
            "train_loss": final, "test_loss": final * 1.1, "train_acc": 0.9, "test_acc": 0.8, "nb_params": nb,
            "duration_s": 1.5, "epochs": epochs, "overfit": 0.1 * width, "trainability": final * 2, "slope": -0.01,
            "slope_std_plus": 0.001, "slope_std_minus": 0.002}, stamp))
        if run_id not in no_history:
            history += records.history_rows(run_id, 1, [
                {"epoch": e, "train_loss": final + 1 / e, "test_loss": final * 1.1 + 1 / e, "seconds": 0.1}
                for e in range(1, epochs + 1)], stamp)
    for table, rows in (("runs", runs), ("params", params), ("results", results), ("history", history)):
        store.append(table, rows, sweep)
    return path


#: 12 runs: two families x widths 2, 3, 8 x 2 replicates; run 12 failed
TWELVE = [(f, w, "done") for f in ("mlp_funnel", "mlp_brick") for w in (2, 3, 8) for _ in range(2)]
TWELVE[-1] = ("mlp_brick", 8, "error")


# -- rows read straight from the Parquet files ---------------------------------------------------
def parquet_rows(store: Path, table: str, where: str = "true", latest: str | None = "run_id") -> list[dict[str, Any]]:
    """Rows of a store table read straight from its Parquet files (the latest per key)."""
    source = f"read_parquet('{store}/{table}/*/*.parquet', hive_partitioning = true)"
    qualify = f"QUALIFY row_number() OVER (PARTITION BY {latest} ORDER BY time DESC) = 1" if latest else ""
    return duckdb.sql(f"SELECT * FROM {source} WHERE {where} {qualify}").to_arrow_table().to_pylist()


def latest_runs(store: Path) -> list[dict[str, Any]]:
    """Each run's latest runs row (run_id, status, worker, device), by run id."""
    return duckdb.sql(
        f"SELECT run_id, status, worker, device FROM read_parquet('{store}/runs/*/*.parquet', hive_partitioning = true) "
        "QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY time DESC) = 1 ORDER BY run_id"
    ).to_arrow_table().to_pylist()


# -- a large store (the live page's bounds) ------------------------------------------------------
def large_store(path: Path, models: int = 1000, datasets: int = 10, replicates: int = 10, epochs: int = 3,
                fail_every: int = 0) -> list[int]:
    """A finished sweep of ``models x datasets x replicates`` runs (100,000 by default), written
    through the store's writer as a sweep writes them (planned runs and params, then runs, history
    and results rows), in bulk: one append per table and chunk. Every ``fail_every``-th run failed.
    Returns the run ids."""
    store = Store(path, create=True)
    writer = SweepWriter(store)
    pipes = [[{"type": "dataset", "class": "dataset_OR", "path_to_class": "./dataset.py", "key": f"dataset_{d}"},
              {"type": "mlp", "class": "mlp_brick", "path_to_class": "./mlp.py", "key": f"model_{m:04d}", "width": 2}]
             for d in range(datasets) for m in range(models)]
    planned = [records.PlannedRun(0, 0, pipe, epochs) for pipe in pipes for _ in range(replicates)]
    ids = list(store.allocate_run_ids(len(planned)))
    for run, run_id in zip(planned, ids, strict=True):
        run.run_id = run_id
    records.write_planned(store, writer.sweep_id, planned, seed=lambda run_id: run_id, process_raw=PROCESS)
    for start in range(0, len(planned), 20_000):
        chunk, stamp = planned[start:start + 20_000], now()
        runs, history, results = [], [], []
        for run in chunk:
            failed = fail_every and run.run_id % fail_every == 0
            runs.append(records.run_row(run.run_id, 0, run.pipeline, "error" if failed else "done", run.run_id, stamp,
                                        worker="tcp://127.0.0.1:1", error=TRACEBACK if failed else None))
            rows = curve(run.run_id % 97, epochs)
            history += records.history_rows(run.run_id, 0, rows, stamp)
            if not failed:
                results.append(records.result_row(run.run_id, 0, {"train_loss": rows[-1]["train_loss"],
                                                                  "test_loss": rows[-1]["test_loss"], "epochs": epochs}, stamp))
        for table, rows_ in (("runs", runs), ("history", history), ("results", results)):
            store.append(table, rows_, writer.sweep_id)
    writer.end()
    return ids
