"""The verdict of a large sweep: 100,000 done runs, 1,000 models over 10 datasets, 10 replicates.

Times ``mosaic.analysis.verdict.verdict_table`` plus ``across_datasets`` on a frame of one row
per run (what ``mosaic verdict`` computes once the store is read), best of ``--repeat`` runs.

    .venv/bin/python bench/bench_verdict.py [--models 1000] [--datasets 10] [--replicates 10] [--store DIR]

With ``--store DIR`` the same runs are also written to a store (through the store's writer, as a
sweep plans them, with a done runs row and a results row each) and ``mosaic.verdict(DIR)`` is
timed end to end: reading the store, naming datasets and models, the statistics.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import mosaic
from mosaic.analysis.verdict import across_datasets, verdict_table
from mosaic.store import records
from mosaic.store.writer import Store, now

PROCESS = {"lr": "1e-2", "epochs": "1", "loss_function": "MSELoss", "data_scheme": "dataset", "pipeline_scheme": "mlp"}


def build(models: int, datasets: int, replicates: int, seed: int = 0) -> pd.DataFrame:
    """One row per run: each model's true mean drifts with its index, noise of sd 0.1."""
    rng = np.random.default_rng(seed)
    model = np.repeat(np.arange(models), replicates)
    rows = []
    for d in range(datasets):
        truth = 1.0 + model / models + rng.normal(0, 0.02, models)[model]
        rows.append(pd.DataFrame({"dataset": f"dataset_{d}", "model": [f"model_{m:04d}" for m in model],
                                  "value": truth + rng.normal(0, 0.1, len(model))}))
    return pd.concat(rows, ignore_index=True)


def write_store(path: Path, frame: pd.DataFrame) -> None:
    """The runs of ``frame`` as one done sweep of a new store at ``path``."""
    store = Store(path, create=True)
    sweep = store.new_sweep_id()
    ids = list(store.allocate_run_ids(len(frame)))
    pipes = {}
    planned = []
    for run_id, dataset, model in zip(ids, frame["dataset"], frame["model"], strict=True):
        pipe = pipes.setdefault((dataset, model), [
            {"type": "dataset", "class": "dataset_OR", "path_to_class": "./dataset.py", "key": dataset},
            {"type": "mlp", "class": "mlp_brick", "path_to_class": "./mlp.py", "key": model, "width": 2}])
        planned.append(records.PlannedRun(run_id, 0, pipe, 1))
    records.write_planned(store, sweep, planned, seed=lambda run_id: run_id, process_raw=PROCESS)
    stamp = now()
    store.append("runs", [records.run_row(p.run_id, 0, p.pipeline, "done", p.run_id, stamp) for p in planned], sweep)
    store.append("results", [records.result_row(run_id, 0, {"test_loss": value, "epochs": 1}, stamp)
                             for run_id, value in zip(ids, frame["value"], strict=True)], sweep)
    store.compact(sweep)


def time_store(path: Path, frame: pd.DataFrame, repeat: int) -> None:
    if not path.exists():
        start = time.perf_counter()
        write_store(path, frame)
        print(f"store of {len(frame):,} runs written in {time.perf_counter() - start:.1f} s")
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = mosaic.verdict(path)
        best = min(best, time.perf_counter() - start)
    print(f"mosaic.verdict({path}) end to end: {best:.2f} s (best of {repeat}); {len(result.table)} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", type=Path, help="also write the runs to this store (if absent) and time mosaic.verdict on it")
    args = parser.parse_args()
    frame = build(args.models, args.datasets, args.replicates)
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        table = verdict_table(frame, "test_loss", higher_is_better=False)
        across = across_datasets(table, higher_is_better=False)
        best = min(best, time.perf_counter() - start)
    counts = table["verdict"].value_counts().to_dict()
    print(f"{len(frame):,} runs, {args.models} models x {args.datasets} datasets x {args.replicates} replicates: "
          f"verdict in {best:.2f} s (best of {args.repeat}); verdicts {counts}; "
          f"across datasets: {0 if across is None else len(across)} models ranked")
    if args.store is not None:
        time_store(args.store, frame, args.repeat)


if __name__ == "__main__":
    main()
