"""Benchmark: ``mosaic run`` against raw PyTorch doing the same trainings.

Usage: .venv/bin/python bench/bench_run.py [--repeat 3] [--quick] [--workload t30,r960,a,b,c] [--workers 2]

Every workload trains the tutorial's models (OR dataset, batch 1, mlp_funnel and mlp_brick,
length 4, widths {2-4}) with ``mosaic run`` and with a raw script training the same models
in a 2-process ``multiprocessing`` spawn pool: one torch thread per process, ``loss.item()``
per batch, no accuracy. Both sides run as fresh processes timed from start to exit
(interpreter, imports, cluster or pool start included), alternately, ``--repeat`` times.
Two estimates of the ratio are printed: median(mosaic) / median(raw), and the median of the
pairs' own ratios (each pair ran back to back, so it shared the machine's load); a target
counts as met only when both are within it. The CPU time of each side (its processes and
their children, user + system) is printed too: it moves less than wall time on a shared
machine, and Mosaic's extra CPU (driver, scheduler, event loops) is what costs wall time on
2 cores.

- ``t30``: 24 runs x 30 epochs, 160 samples (target ratio <= 1.10)
- ``r960``: 960 runs x 1 epoch, 40 samples (target <= 1.25)
- ``a``: 24 runs x 50 epochs, 200 samples, the tutorial sweep (target <= 1.10)
- ``b``: 240 runs x 5 epochs, 200 samples (target <= 1.25)
- ``s6``: 6 runs x 1 epoch, 40 samples: the start and end of a sweep against the pool's (no
  target; not in the default list)
- ``c``: 10,000 one-epoch runs of 10 samples, batch 2: the driver's peak memory (max RSS
  of the driver process, which also hosts the scheduler, and the tracemalloc peak of what
  the sweep allocated, imports excluded) and the Parquet files left per table.

``--quick`` shrinks every size (about two minutes). "overhead ms/run" is
``(mosaic - raw) x workers / runs``: the extra time each run holds a worker slot.
Prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "mosaic" / "examples" / "tutorial"

CONFIG = """[PROCESS]
lr = 1e-2
epochs = {epochs}
loss_function = MSELoss
data_scheme = dataset
pipeline_scheme = mlp
run_files_path = run_files

[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = {workers}
multiplicity = {multiplicity}
cache_database_path = cache
cache_size = 500M

[dataset_OR]
type = dataset
class = dataset_OR
path_to_class = ./dataset.py
batch_size = {batch}
data_size = {data_size}
train_prop = 0.8
key = {{class}}

[mlp_funnel]
type = mlp
class = mlp_funnel
path_to_class = ./mlp.py
key = mlp_funnel
length = 4
width = {{2-4}}

[mlp_brick]
type = mlp
class = mlp_brick
path_to_class = ./mlp.py
key = mlp_brick
length = 4
width = {{2-4}}
"""


def make_sweep(folder: Path, **values: Any) -> Path:
    """A tutorial copy in ``folder`` with the given sizes; returns its config."""
    folder.mkdir(parents=True)
    for name in ("dataset.py", "mlp.py"):
        shutil.copy(TUTORIAL / name, folder / name)
    config = folder / "config.ini"
    config.write_text(CONFIG.format(**values))
    return config


# -- the Mosaic side (a fresh process) ------------------------------------------------------------
def _mosaic_main(config: str, store: str, tracemalloc_on: bool) -> None:
    import resource
    import tracemalloc

    import mosaic
    import mosaic.exec.driver.commands  # noqa: F401 - imports (torch, dask) are not the sweep's memory

    if tracemalloc_on:
        tracemalloc.start()

    ends: list[str] = []
    summary = mosaic.run(config, store, on_event=lambda e: ends.append(e.text) if e.kind == "end" else None)
    from mosaic.store.writer import Store

    files = {t: len(Store(store).files(t)) for t in ("sweeps", "runs", "params", "results", "history")}
    print(json.dumps({
        "counts": summary.counts,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "traced_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20 if tracemalloc_on else None,
        "files": files,
        "compaction": ends[-1] if ends else "",
        "sweep_seconds": summary.seconds,
        "driver_cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
    }))


# -- the raw PyTorch side ------------------------------------------------------------------------
def raw_train(job: dict[str, Any]) -> float:
    """One training as a plain PyTorch script would write it: same data, model, loop;
    ``loss.item()`` per batch, no accuracy (the baseline)."""
    import torch

    torch.set_num_threads(job["threads"])
    torch.manual_seed(job["seed"])
    generator = torch.Generator().manual_seed(0)
    size = job["data_size"]
    bits = torch.randint(0, 2, (size, 2), generator=generator).float()
    target = (bits[:, 0].bool() | bits[:, 1].bool()).float().unsqueeze(1)
    inputs = bits + 0.05 * torch.randn(bits.shape, generator=generator)
    cut = int(size * 0.8)
    loaders = [
        torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=job["batch"], drop_last=True)
        for x, y in ((inputs[:cut], target[:cut]), (inputs[cut:], target[cut:]))
    ]
    length, width = 4, job["width"]
    hidden = [width * (length - i) for i in range(length)] if job["model"] == "funnel" else [width] * length
    sizes = [2, *hidden, 1]
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.MSELoss()
    test_loss = 0.0
    for _ in range(job["epochs"]):
        for loader, training in ((loaders[0], True), (loaders[1], False)):
            model.train(training)
            total, batches = 0.0, 0
            with torch.set_grad_enabled(training):
                for x, y in loader:
                    loss = loss_fn(model(x), y)
                    if training:
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                    total += loss.item()
                    batches += 1
            test_loss = total / batches
    return test_loss


def _raw_main(spec: str) -> None:
    jobs = json.loads(spec)
    workers = jobs[0]["workers"]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(raw_train, jobs, chunksize=1)


def raw_jobs(*, runs_per_model_width: int, epochs: int, data_size: int, batch: int, workers: int) -> list[dict[str, Any]]:
    """The same trainings as the Mosaic sweep, in the sweep's order."""
    from mosaic.exec.cluster.workers import available_cores

    threads = max(1, available_cores() // workers)
    return [
        {"model": model, "width": width, "seed": index, "epochs": epochs, "data_size": data_size,
         "batch": batch, "threads": threads, "workers": workers}
        for index, (model, width) in enumerate(
            (m, w) for m in ("funnel", "brick") for w in (2, 3, 4) for _ in range(runs_per_model_width)
        )
    ]


# -- driving both ---------------------------------------------------------------------------------
def timed(command: list[str]) -> tuple[float, str, float]:
    """Run ``command``; its wall seconds, stdout and CPU seconds (it and its descendants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{command[:4]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, done.stdout, cpu


def compare(
    folder: Path, label: str, *, multiplicity: int, epochs: int, data_size: int, batch: int, workers: int, repeat: int
) -> dict[str, Any]:
    config = make_sweep(folder / label, epochs=epochs, workers=workers, multiplicity=multiplicity, batch=batch, data_size=data_size)
    jobs = raw_jobs(runs_per_model_width=multiplicity, epochs=epochs, data_size=data_size, batch=batch, workers=workers)
    raws: list[float] = []
    mosaics: list[float] = []
    raw_cpu: list[float] = []
    mosaic_cpu: list[float] = []
    loads: list[float] = []
    for attempt in range(repeat):  # alternate, so both sides see the same machine load
        loads.append(os.getloadavg()[0])
        seconds, _, cpu = timed([sys.executable, __file__, "_raw", json.dumps(jobs)])
        raws.append(seconds)
        raw_cpu.append(cpu)
        seconds, out, cpu = timed([sys.executable, __file__, "_mosaic", str(config), str(folder / label / f"store{attempt}")])
        mosaics.append(seconds)
        mosaic_cpu.append(cpu)
        shutil.rmtree(folder / label / f"store{attempt}", ignore_errors=True)
        shutil.rmtree(folder / label / "run_files", ignore_errors=True)
        report = json.loads(out.strip().splitlines()[-1])
    raw_s, mosaic_s = statistics.median(raws), statistics.median(mosaics)
    pairs = [m / r for m, r in zip(mosaics, raws, strict=True)]
    runs = len(jobs)
    return {
        "runs": runs, "epochs": epochs, "raw_s": raw_s, "mosaic_s": mosaic_s, "ratio": mosaic_s / raw_s,
        "pair_ratio": statistics.median(pairs),
        "cpu_ratio": statistics.median(mosaic_cpu) / statistics.median(raw_cpu),
        "overhead_ms": (mosaic_s - raw_s) * workers / runs * 1000, "counts": report["counts"],
        "all": f"raw {', '.join(f'{x:.1f}' for x in raws)}; mosaic {', '.join(f'{x:.1f}' for x in mosaics)}; "
               f"pair ratios {', '.join(f'{x:.3f}' for x in pairs)}; CPU s raw {', '.join(f'{x:.1f}' for x in raw_cpu)}, "
               f"mosaic {', '.join(f'{x:.1f}' for x in mosaic_cpu)}",
        "driver_cpu_s": report["driver_cpu_s"], "loads": loads,
    }


def memory(folder: Path, *, runs: int, workers: int) -> dict[str, Any]:
    multiplicity = max(1, runs // 6)
    config = make_sweep(folder / "c", epochs=1, workers=workers, multiplicity=multiplicity, batch=2, data_size=10)
    seconds, out = timed([sys.executable, __file__, "_mosaic", str(config), str(folder / "c" / "store"), "--tracemalloc"])
    report = json.loads(out.strip().splitlines()[-1])
    return {"runs": multiplicity * 6, "wall_s": seconds, **report}


#: workload -> (label, runs per model and width (6 of them), epochs, samples, target ratio or None)
WORKLOADS: dict[str, tuple[str, int, int, int, float | None]] = {
    "t30": ("24 x 30 tiny runs", 4, 30, 160, 1.10),
    "r960": ("960 x 1-epoch runs", 160, 1, 40, 1.25),
    "a": ("(a) tutorial sweep", 4, 50, 200, 1.10),
    "b": ("(b) many short runs", 40, 5, 200, 1.25),
    "s6": ("6 one-epoch runs (start and end)", 1, 1, 40, None),
}
QUICK: dict[str, tuple[int, int]] = {"t30": (1, 10), "r960": (16, 1), "a": (1, 5), "b": (4, 5), "s6": (1, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about two minutes")
    parser.add_argument("--workload", "--only", dest="workload", default="t30,r960,a,b,c",
                        help="comma-separated: t30, r960, a, b, c, s6 (default: t30, r960, a, b, c)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs-c", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="alternate raw and mosaic N times; medians")
    parser.add_argument("--dir", help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()
    parts = args.workload.split(",")
    unknown = [p for p in parts if p not in (*WORKLOADS, "c")]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; choose from {', '.join([*WORKLOADS, 'c'])}")
    if args.quick:
        args.runs_c = 500
    folder = Path(args.dir or tempfile.mkdtemp(prefix="mosaic-bench-run-"))
    folder.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    lines = [f"workers: {args.workers}; command: {' '.join(sys.argv)}; uptime before: {_uptime()}", ""]
    header = ["| workload | runs x epochs | samples | raw PyTorch s | mosaic run s | ratio | median pair ratio "
              "| CPU ratio | target | met | overhead ms/run |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    notes: list[str] = []
    try:
        for part in parts:
            if part == "c":
                continue
            name, multiplicity, epochs, samples, target = WORKLOADS[part]
            if args.quick:
                multiplicity, epochs = QUICK[part]
            result = compare(folder, part, multiplicity=multiplicity, epochs=epochs, data_size=samples, batch=1,
                             workers=args.workers, repeat=args.repeat)
            result.update(samples=samples, target=target)
            lines += [*header, _row(name, result)] if len(lines) == 2 else [_row(name, result)]
            loads = ", ".join(f"{x:.1f}" for x in result["loads"])
            notes.append(f"{part}: every timing: {result['all']}; load average before each pair: {loads}; "
                         f"driver process CPU {result['driver_cpu_s']:.1f} s")
        if "c" in parts:
            c = memory(folder, runs=args.runs_c, workers=args.workers)
            notes.append(
                f"(c) {c['runs']} one-epoch runs in {c['wall_s']:.1f} s ({c['counts']}): driver max RSS "
                f"{c['max_rss_mb']:.0f} MiB (driver + in-process scheduler), tracemalloc peak "
                f"{c['traced_peak_mb']:.1f} MiB; files left per table {c['files']}; {c['compaction']}"
            )
        notes.append(f"uptime after: {_uptime()}; whole benchmark {time.perf_counter() - began:.0f} s")
        lines += ["", *notes]
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    print("\n".join(lines))


def _uptime() -> str:
    done = subprocess.run(["uptime"], capture_output=True, text=True, timeout=10)
    return done.stdout.strip()


def _row(name: str, part: dict[str, Any]) -> str:
    target = part["target"]
    met = "-" if target is None else "yes" if max(part["ratio"], part["pair_ratio"]) <= target else "no"
    return (
        f"| {name} | {part['runs']} x {part['epochs']} | {part['samples']} | {part['raw_s']:.1f} | "
        f"{part['mosaic_s']:.1f} | {part['ratio']:.3f} | {part['pair_ratio']:.3f} | {part['cpu_ratio']:.3f} | "
        f"{'-' if target is None else f'{target:.2f}'} | {met} | {part['overhead_ms']:.0f} |"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_mosaic":
        _mosaic_main(sys.argv[2], sys.argv[3], "--tracemalloc" in sys.argv)
    elif len(sys.argv) > 1 and sys.argv[1] == "_raw":
        _raw_main(sys.argv[2])
    else:
        main()
