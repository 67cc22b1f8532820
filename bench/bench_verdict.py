"""The verdict of a large sweep: 100,000 done runs, 1,000 models over 10 datasets, 10 replicates.

Times ``mosaic.analysis.verdict.verdict_table`` plus ``across_datasets`` on a frame of one row
per run (what ``mosaic verdict`` computes once the store is read), best of ``--repeat`` runs.

    .venv/bin/python bench/bench_verdict.py [--models 1000] [--datasets 10] [--replicates 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from mosaic.analysis.verdict import across_datasets, verdict_table


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
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


if __name__ == "__main__":
    main()
