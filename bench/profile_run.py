"""Profile the worker side of ``mosaic run`` in one process, against the raw loop.

Usage: .venv/bin/python bench/profile_run.py [--runs 6] [--epochs 30] [--data-size 160] [--cprofile N]

Trains the bench's tutorial runs with ``execute_run`` (no Dask) and with bench_run's raw loop,
one torch thread, and prints the per-run times and, with ``--cprofile N``, the N heaviest
functions of the Mosaic side (cumulative and own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_run import TUTORIAL, raw_train  # noqa: E402

from mosaic.exec.training.run import RunTask, execute_run  # noqa: E402


def tasks(runs: int, epochs: int, data_size: int, batch: int, run_files: str) -> list[RunTask]:
    process = {"lr": 1e-2, "epochs": epochs, "loss_function": "MSELoss", "class_loss_function": None,
               "path_to_class_loss_function": None, "optimizer": "Adam", "seed": None, "accuracy": None,
               "checkpoint_every": None, "patience": None, "data_scheme": ["dataset"], "pipeline_scheme": ["mlp"]}
    out = []
    for index in range(runs):
        model = ("mlp_funnel", "mlp_brick")[index % 2]
        pipeline = [
            {"type": "dataset", "class": "dataset_OR", "path_to_class": str(TUTORIAL / "dataset.py"),
             "batch_size": batch, "data_size": data_size, "train_prop": 0.8},
            {"type": "mlp", "class": model, "path_to_class": str(TUTORIAL / "mlp.py"), "length": 4, "width": 2 + index % 3},
        ]
        out.append(RunTask(index + 1, 0, 1, pipeline, process, str(TUTORIAL), run_files, epochs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--data-size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--cprofile", type=int, default=0, help="print the N heaviest functions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        work = tasks(args.runs, args.epochs, args.data_size, args.batch, folder)
        execute_run(work[0])  # imports and warm-up
        raw_train({"model": "funnel", "width": 2, "seed": 0, "epochs": 1, "data_size": args.data_size,
                   "batch": args.batch, "threads": 1, "workers": 1})
        profiler = cProfile.Profile() if args.cprofile else None
        mosaic_s = raw_s = 0.0
        for index, task in enumerate(work):  # interleaved, so both sides see the same machine load
            start = time.perf_counter()
            if profiler:
                profiler.enable()
            outcome = execute_run(task)
            if profiler:
                profiler.disable()
            mosaic_s += time.perf_counter() - start
            assert outcome.status == "done", outcome.error
            start = time.perf_counter()
            raw_train({"model": ("funnel", "brick")[index % 2], "width": 2 + index % 3, "seed": index,
                       "epochs": args.epochs, "data_size": args.data_size, "batch": args.batch, "threads": 1,
                       "workers": 1})
            raw_s += time.perf_counter() - start
    print(f"{args.runs} runs x {args.epochs} epochs, {args.data_size} samples, batch {args.batch}: "
          f"execute_run {mosaic_s / args.runs * 1000:.1f} ms/run, raw {raw_s / args.runs * 1000:.1f} ms/run, "
          f"ratio {mosaic_s / raw_s:.3f}{' (under cProfile)' if profiler else ''}")
    if profiler:
        for key in ("cumulative", "tottime"):
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(args.cprofile)
            print(text.getvalue())


if __name__ == "__main__":
    main()
