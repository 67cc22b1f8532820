"""Benchmark the plots: plotloss of 240 runs at plot_size 3, metaplot over 10,000 runs.

    .venv/bin/python bench/bench_plots.py [--runs-loss 240] [--runs-meta 10000] [--epochs 50]

Stores are synthesised directly with ``Store.append`` (a tutorial-shaped sweep: one dataset,
two MLP families, widths 2..N, 4 replicates, ~5% failed runs). Targets: plotloss
< 15 s on 2 cores, metaplot < 3 s. Times are wall-clock, including opening the store; "CPU s"
adds this process's and its children's CPU time (render processes, CLI runs), a figure that
other load on a shared machine does not inflate as much as the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from mosaic.store.writer import Store
from mosaic.sweep import format_pipeline, legacy_params


def _pipeline(family: str, width: int) -> list[dict]:
    return [
        {"type": "dataset", "class": "dataset_OR", "path_to_class": "./dataset.py", "batch_size": "1",
         "data_size": "200", "train_prop": "0.8", "key": "dataset_OR"},
        {"type": "mlp", "class": family, "path_to_class": "./mlp.py", "key": family, "length": "4",
         "width": width, "name": family},
    ]


def synth_store(path: Path, runs: int, epochs: int, replicates: int = 4, seed: int = 0) -> Store:
    """A store of ``runs`` tutorial-like runs (histories of ``epochs`` epochs for done runs)."""
    rng = np.random.default_rng(seed)
    store = Store(path, create=True)
    ids = np.array(list(store.allocate_run_ids(runs)), dtype=np.int64)
    sweep = store.new_sweep_id()
    configs = runs // replicates + 1
    pipes = [_pipeline(("mlp_funnel", "mlp_brick")[c % 2], 2 + c // 2) for c in range(configs)]
    which = np.arange(runs) // replicates
    failed = rng.random(runs) < 0.05
    status = np.where(failed, "error", "done")
    texts = [json.dumps(p) for p in pipes]
    formatted = [format_pipeline(p) for p in pipes]
    store.append("runs", pa.table({
        "run_id": ids, "attempt": np.ones(runs, dtype=np.int64), "status": status,
        "pipeline": [formatted[w] for w in which], "pipeline_json": [texts[w] for w in which],
    }), sweep)
    names, values, owners = [], [], []
    for i, w in enumerate(which):
        rows = [*legacy_params(pipes[w]), ("pipeline", texts[w]), ("status", status[i])]
        names += [n for n, _ in rows]
        values += [str(v) for _, v in rows]
        owners += [ids[i]] * len(rows)
    store.append("params", pa.table({"run_id": np.array(owners, dtype=np.int64), "param_name": names,
                                     "param_value": values}), sweep)
    done = ids[~failed]
    widths = np.array([pipes[w][1]["width"] for w in which])[~failed]
    nb = (widths * widths * 4 + widths * 3 + 1).astype(np.int64)
    final_train = np.exp(-widths / 3) + rng.random(len(done)) * 0.05
    store.append("results", pa.table({
        "run_id": done, "attempt": np.ones(len(done), dtype=np.int64),
        "train_loss": final_train, "test_loss": final_train * 1.1, "train_acc": rng.random(len(done)),
        "test_acc": rng.random(len(done)), "nb_params": nb, "duration_s": rng.random(len(done)) * 10,
        "epochs": np.full(len(done), epochs, dtype=np.int64), "overfit": rng.random(len(done)) * 0.1,
        "trainability": final_train * 1.2, "slope": -rng.random(len(done)) * 1e-3,
        "slope_std_plus": rng.random(len(done)) * 1e-4, "slope_std_minus": rng.random(len(done)) * 1e-4,
    }), sweep)
    if epochs:
        epoch = np.tile(np.arange(1, epochs + 1), len(done))
        owner = np.repeat(done, epochs)
        decay = np.exp(-epoch / (epochs / 4))
        store.append("history", pa.table({
            "run_id": owner, "attempt": np.ones(len(owner), dtype=np.int64), "epoch": epoch.astype(np.int64),
            "train_loss": decay + np.repeat(final_train, epochs), "test_loss": decay * 1.2 + np.repeat(final_train, epochs),
            "seconds": np.full(len(owner), 0.1),
        }), sweep)
    return store


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(action, repeat: int) -> tuple[list[float], float, object]:
    """Wall times of ``repeat`` calls, the median CPU seconds (this process and its
    children: render processes, CLI runs) and the last result."""
    times, cpus, result = [], [], None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), _cpu()
        result = action()
        times.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu)
    return times, statistics.median(cpus), result


def _row(name: str, runs: str, output: str, times: list[float], cpu: float, target: str) -> str:
    return (f"| {name} | {runs} | {output} | {min(times):.2f} | {statistics.median(times):.2f} | "
            f"{cpu:.2f} | {target} |")


def main() -> None:
    from mosaic.analysis.report import metaplot, plotloss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-loss", type=int, default=240)
    parser.add_argument("--runs-meta", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--plot-size", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="time each case this many times (min and median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        synth_store(root / "loss", args.runs_loss, args.epochs)
        synth_store(root / "meta", args.runs_meta, 0)
        print(f"synthesised both stores in {time.perf_counter() - started:.2f} s; {os.cpu_count()} cores; "
              f"load average before: {os.getloadavg()[0]:.2f}\n")
        print("| case | runs | output | min s | median s | CPU s | target |")
        print("|---|---:|---|---:|---:|---:|---|")
        for ext in (".pdf", ".html"):
            times, cpu, result = _timed(
                lambda ext=ext: plotloss(root / "loss", root / f"loss{ext}", plot_size=args.plot_size), args.repeat)
            print(_row(f"plotloss, plot_size {args.plot_size}, {args.epochs} epochs",
                       f"{args.runs_loss} ({result.runs} with history)", f"{ext} {result.pages} pages", times, cpu, "< 15 s"))
        for ext in (".pdf", ".png", ".svg", ".html"):
            times, cpu, result = _timed(
                lambda ext=ext: metaplot(root / "meta", root / f"meta{ext}", "dataset_OR", "test_loss"), args.repeat)
            print(_row("metaplot test_loss", f"{args.runs_meta} ({result.runs} done)", ext, times, cpu, "< 3 s"))
        # what a user waits for: a fresh process (imports, vl-convert start-up) through the CLI
        commands = {
            "CLI plotloss -id all (fresh process)": (args.runs_loss, ".pdf", "< 15 s",
                ["plotloss", str(root / "loss"), str(root / "cli.pdf"), "-id", "all", "-plot_size", str(args.plot_size)]),
            "CLI metaplot (fresh process)": (args.runs_meta, ".pdf", "< 3 s",
                ["metaplot", str(root / "meta"), str(root / "cli-meta.pdf"), "dataset_OR", "test_loss"]),
        }
        for name, (runs, ext, target, argv) in commands.items():
            times, cpu, _ = _timed(lambda argv=argv: subprocess.run([sys.executable, "-m", "mosaic.cli", *argv],
                                                                    check=True, capture_output=True), args.repeat)
            print(_row(name, str(runs), ext, times, cpu, target))
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
