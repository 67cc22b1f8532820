"""Stores of scored runs for the verdict and key tests, written with the store's own writer.

:func:`scored_store` plans runs as the driver does (``records.write_planned``: runs rows and
every param, the PROCESS values among them), then gives each a final runs row and, when
done, a results row holding the metrics given. :func:`model_pipeline` builds a
legacy-shaped pipeline of one dataset section and one model section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mosaic.store import records
from mosaic.store.writer import Store, now

#: PROCESS values as a config records them (one data type, one model type)
PROCESS = {"lr": "1e-2", "epochs": "3", "loss_function": "MSELoss", "data_scheme": "dataset",
           "pipeline_scheme": "mlp", "run_files_path": "runs"}


def model_pipeline(dataset: str, model: str) -> list[dict[str, Any]]:
    """A pipeline of dataset ``dataset`` (its key) and model ``model`` (its key)."""
    return [
        {"type": "dataset", "class": "dataset_OR", "path_to_class": "./dataset.py", "key": dataset},
        {"type": "mlp", "class": "mlp_brick", "path_to_class": "./mlp.py", "key": model, "width": 2},
    ]


def scored_store(path: Path, runs: Sequence[tuple[list[dict[str, Any]], str, Mapping[str, Any]]],
                 process: Mapping[str, Any] | None = PROCESS) -> Store:
    """A store (created at ``path`` or appended to) of ``runs``: (pipeline, final status, metrics).

    ``process=None`` records no PROCESS values (as some databases of the original tool)."""
    store = Store(path, create=True)
    sweep = store.new_sweep_id()
    ids = list(store.allocate_run_ids(len(runs)))
    planned = [records.PlannedRun(run_id, 0, pipe, 3) for run_id, (pipe, _, _) in zip(ids, runs, strict=True)]
    records.write_planned(store, sweep, planned, seed=lambda run_id: run_id, process_raw=process or {})
    rows, results = [], []
    stamp = now()
    for run in planned:
        _, status, metrics = runs[run.run_id - ids[0]]
        rows.append(records.run_row(run.run_id, 0, run.pipeline, status, run.run_id, stamp,
                                    error=None if status == "done" else "Traceback: boom"))
        if status == "done":
            results.append(records.result_row(run.run_id, 0, {"epochs": 3, **metrics}, stamp))
    store.append("runs", rows, sweep)
    if results:
        store.append("results", results, sweep)
    return store
