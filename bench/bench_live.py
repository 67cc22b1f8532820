"""The live page at scale: what a refresh costs and what it sends, at 100,000 runs.

Feeds the scheduler's page plugin (``mosaic.exec.cluster.page.MosaicPage``) a sweep's plan and
every run's events (start, each epoch, end), as workers would send them, then times the
page's routes; with ``--store DIR`` also writes the same runs to a store through the store's
writer and times ``mosaic ui``'s board over it.

    .venv/bin/python bench/bench_live.py [--models 1000] [--datasets 10] [--replicates 10] [--epochs 20] [--store DIR]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mosaic.exec.cluster.page import MosaicPage  # noqa: E402
from mosaic.exec.wire.events import RunEvent, sweep_topic  # noqa: E402
from mosaic.live import api  # noqa: E402
from mosaic.live.board import Plan  # noqa: E402
from mosaic.store.status import RunStatus  # noqa: E402

TOKEN = "ab12cd34"


def planned(models: int, datasets: int, replicates: int, epochs: int) -> list[SimpleNamespace]:
    pipes = [[{"type": "dataset", "class": "D", "key": f"dataset_{d}"}, {"type": "mlp", "class": "M", "key": f"model_{m:04d}"}]
             for d in range(datasets) for m in range(models)]
    return [SimpleNamespace(run_id=i + 1, pipeline=pipe, epochs=epochs, total=None)
            for i, pipe in enumerate(p for p in pipes for _ in range(replicates))]


def feed(page: MosaicPage, runs: list[SimpleNamespace], epochs: int) -> int:
    """Every run's events, one Dask event per run (as a worker's announcer batches them)."""
    topic, sent = sweep_topic(1, TOKEN), 0
    for run in runs:
        records = [RunEvent.start(run.run_id, "k", "h:1", "cpu").message()]
        for epoch in range(1, epochs + 1):
            loss = 1.0 / epoch + run.run_id % 13 / 100
            records.append({"event": "epoch", "run_id": run.run_id, "attempt": 0, "epoch": epoch, "epochs": epochs,
                            "train_loss": loss, "test_loss": loss + 0.05, "train_acc": None, "test_acc": None, "seconds": 0.1})
        status = RunStatus.ERROR if run.run_id % 101 == 0 else RunStatus.DONE
        records.append(RunEvent.end(run.run_id, "k", "h:1", "cpu", status, "ValueError: boom").message())
        page.log_event(topic, records)
        sent += len(records)
    return sent


def timed(label: str, page: object, path: str, query: dict[str, str], gzipped: bool = False, repeat: int = 5) -> None:
    best, size = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = len(api.respond(page, path, query, gzipped=gzipped).body)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - start)
    print(f"  {label:<44} {best * 1000:7.1f} ms  {size / 1000:8.1f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--store", type=Path)
    args = parser.parse_args()
    runs = planned(args.models, args.datasets, args.replicates, args.epochs)
    start = time.perf_counter()
    plan = Plan.of(1, TOKEN, runs, ("dataset",), ("mlp",), kind="run", config="c.ini", started=time.time())
    print(f"{len(runs):,} runs, {args.datasets * args.models:,} (dataset, model) pairs, {args.epochs} epochs each")
    print(f"plan: {time.perf_counter() - start:.2f} s on the driver, {len(plan.runs):,} spans")
    gc.collect()
    tracemalloc.start()
    page = MosaicPage()
    page.take_plan(plan.message())
    held_plan = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    start = time.perf_counter()
    events = feed(page, runs, args.epochs)
    seconds = time.perf_counter() - start
    print(f"events: {events:,} taken in {seconds:.1f} s ({seconds / events * 1e6:.1f} us each, message parsing included)")
    print(f"memory of the plan's board: {held_plan / len(runs):.0f} bytes a run (before any epoch)")
    print("a refresh (best of 5):")
    timed("summary (the live view)", page, "/mosaic/summary.json", {})
    timed("summary, gzipped", page, "/mosaic/summary.json", {}, gzipped=True)
    timed("summary sorted by best, descending", page, "/mosaic/summary.json", {"sort": "best", "desc": "1"})
    timed("/mosaic.json: first 100 runs", page, "/mosaic.json", {})
    timed("/mosaic.json: 500 runs sorted by test_loss", page, "/mosaic.json", {"sort": "test_loss", "limit": "500"})
    timed("/mosaic.json: failed runs matching a model", page, "/mosaic.json", {"state": "failed", "q": "model_00"})
    timed("one run's curve", page, "/mosaic/run.json", {"run": "5000"})
    if args.store is not None:
        store_side(args, runs)


def store_side(args: argparse.Namespace, runs: list[SimpleNamespace]) -> None:
    from mosaic.live.server import StoreSource
    from tests.helpers.stores import large_store

    if not args.store.exists():
        start = time.perf_counter()
        large_store(args.store, args.models, args.datasets, args.replicates, args.epochs, fail_every=101)
        print(f"store of {len(runs):,} runs written in {time.perf_counter() - start:.1f} s")
    source = StoreSource(args.store)
    start = time.perf_counter()
    source.board()
    print(f"mosaic ui: the store's board read in {time.perf_counter() - start:.2f} s (again only when the store changes)")
    timed("mosaic ui: summary", source, "/mosaic/summary.json", {})
    timed("mosaic ui: one run's curve (from the store)", source, "/mosaic/run.json", {"run": "5000"})
    source.close()


if __name__ == "__main__":
    main()
