"""Benchmark: SQL over a synthetic store, against the same data exported to the original sqlite layout.

Usage: .venv/bin/python bench/bench_sql.py [--runs 100000] [--epochs 100] [--repeat 3] [--dir DIR]

Builds a store of RUNS runs x EPOCHS epochs (3 status rows per run, ~15 params per run, 1 %
of runs rerun so the views really pick latest rows) straight through Store.append in big
vectorised batches, then times, through open_store:
  (a) mean and std of the final test_loss per model key per dataset key,
  (b) runs whose train loss rose over the last 10 % of epochs (from the history view),
  (c) a -param_name_and_value selection (select_runs),
  (d), (e) old numeric SQL on params.param_value (integers for range values, as the original),
the same questions against the exported sqlite file ((b) from run_results.slope, the only
way the legacy layout can answer it without opening a .pt file per run), and export/import
times. Answers are checked to agree. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import mosaic
from mosaic.analysis.legacy import export, import_db
from mosaic.store.reader import select_runs
from mosaic.store.selection import Selection
from mosaic.store.session import open_store
from mosaic.store.writer import Store, now

DATASETS = 4
WIDTHS = 10
MODELS = ("mlp_funnel", "mlp_brick")
BATCH_RUNS = 20_000

QUERY_A = """
    SELECT d.param_value AS dataset_key, m.param_value AS model_key,
           avg(r.test_loss) AS mean_test_loss, stddev_samp(r.test_loss) AS std_test_loss, count(*) AS runs
    FROM run_results r
    JOIN params d ON d.run_id = r.run_id AND d.param_name = 'dataset_key'
    JOIN params m ON m.run_id = r.run_id AND m.param_name = 'mlp_key'
    GROUP BY ALL ORDER BY dataset_key, model_key"""
QUERY_B = """
    WITH last AS (SELECT run_id, max(epoch) AS n FROM history GROUP BY run_id)
    SELECT h.run_id FROM history h JOIN last ON h.run_id = last.run_id
    WHERE h.epoch IN (last.n, last.n - greatest(1, last.n // 10))
    GROUP BY h.run_id HAVING arg_max(h.train_loss, h.epoch) > arg_min(h.train_loss, h.epoch)
    ORDER BY h.run_id"""
SQLITE_A = """
    SELECT d.param_value, m.param_value, avg(r.test_loss),
           avg(r.test_loss * r.test_loss), count(*)
    FROM run_results r
    JOIN params d ON d.run_id = r.run_id AND d.param_name = 'dataset_key'
    JOIN params m ON m.run_id = r.run_id AND m.param_name = 'mlp_key'
    GROUP BY 1, 2 ORDER BY 1, 2"""
SQLITE_B = "SELECT run_id FROM run_results WHERE slope > 0 ORDER BY run_id"
SQLITE_C = "SELECT run_id FROM params WHERE param_name = ? AND param_value = ?"
SELECTION = ("mlp_funnel_width", "7")
# old numeric SQL on params.param_value (range values are integers, as in the original's sqlite)
QUERY_D = "SELECT run_id FROM params WHERE param_name = 'mlp_funnel_width' AND param_value > 9 ORDER BY run_id"
QUERY_E = "SELECT count(*) FROM params WHERE param_value > 2"  # every text value is > 2, as in sqlite


def _times(first: int, count: int, step_us: int = 1) -> pa.Array:
    return pa.array(first + np.arange(count, dtype=np.int64) * step_us, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _curves(ids: np.ndarray, epochs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train and test loss, (runs, epochs): decaying, 15 % of runs turn up at the end."""
    t = np.arange(1, epochs + 1, dtype=np.float64)
    scale = rng.uniform(0.5, 2.0, (len(ids), 1))
    rate = rng.uniform(0.02, 0.1, (len(ids), 1))
    train = scale * np.exp(-rate * t) + 0.05 + rng.normal(0, 0.002, (len(ids), epochs))
    rising = rng.random(len(ids)) < 0.15
    tail = max(1, epochs // 5)
    train[rising, -tail:] += np.linspace(0, 0.2, tail)
    test = train + rng.uniform(0.01, 0.1, (len(ids), 1))
    return train, test


def build_store(path: Path, runs: int, epochs: int, seed: int = 0) -> Store:
    """A synthetic store: RUNS runs written as one sweep, 1 % rerun in a second sweep."""
    rng = np.random.default_rng(seed)
    store = Store(path, create=True)
    sweep = store.new_sweep_id()
    first = store.allocate_run_ids(runs).start
    start = now()
    base = int(start.timestamp() * 1e6)
    store.append("sweeps", [{"sweep_id": sweep, "kind": "run", "started": start, "store_path": str(path)}], sweep)
    for lo in range(0, runs, BATCH_RUNS):
        ids = np.arange(first + lo, first + min(runs, lo + BATCH_RUNS), dtype=np.int64)
        _write_batch(store, sweep, ids, epochs, base + lo * 10, rng)
    store.append("sweeps", [{"sweep_id": sweep, "kind": "run", "started": start, "ended": now(), "store_path": str(path)}], sweep)
    rerun = store.new_sweep_id()
    again = np.arange(first, first + runs, 100, dtype=np.int64)
    later = int(now().timestamp() * 1e6)
    _write_history(store, rerun, again, epochs, later, rng, attempt=1)
    return store


def _pipelines(ids: np.ndarray) -> tuple[list[str], list[list[tuple[str, str]]]]:
    jsons, params = [], []
    for run_id in ids.tolist():
        data = run_id % DATASETS
        model = MODELS[(run_id // DATASETS) % len(MODELS)]
        width = 2 + (run_id // (DATASETS * len(MODELS))) % WIDTHS
        pipeline = [
            {"type": "dataset", "class": "dataset_OR", "path_to_class": "./dataset.py",
             "data_size": str(100 * (data + 1)), "key": f"data_{data}"},
            {"type": "mlp", "class": model, "path_to_class": "./mlp.py", "key": f"{model[4:]}_{width}",
             "width": width, "name": model},
        ]
        text = json.dumps(pipeline)
        jsons.append(text)
        params.append([
            ("pipeline", text), ("dataset_OR_type", "dataset"), ("dataset_OR_class", "dataset_OR"),
            ("dataset_OR_path_to_class", "./dataset.py"), ("dataset_OR_data_size", str(100 * (data + 1))),
            ("dataset_key", f"data_{data}"), (f"{model}_type", "mlp"), (f"{model}_class", model),
            (f"{model}_path_to_class", "./mlp.py"), ("mlp_key", f"{model[4:]}_{width}"),
            (f"{model}_width", str(width)), (f"{model}_name", model), ("lr", "1e-2"), ("epochs", "100"),
            ("database_path", "bench"),
        ])
    return jsons, params


def _write_batch(store: Store, sweep: int, ids: np.ndarray, epochs: int, base: int, rng: np.random.Generator) -> None:
    n = len(ids)
    jsons, params = _pipelines(ids)
    flat = [(int(r), name, value) for r, rows in zip(ids.tolist(), params, strict=True) for name, value in rows]
    store.append("params", pa.table({
        "run_id": pa.array([f[0] for f in flat], pa.int64()), "param_name": [f[1] for f in flat],
        "param_value": [f[2] for f in flat],
        "param_int": pa.array([int(f[2]) if f[1].endswith("_width") else None for f in flat], pa.int64()),
        "time": _times(base, len(flat)),
    }), sweep)
    failed = rng.random(n) < 0.02
    status = np.where(failed, "error", "done")
    runs = pa.table({
        "run_id": np.tile(ids, 3), "attempt": np.zeros(3 * n, dtype=np.int64),
        "status": np.concatenate([np.full(n, "pending"), np.full(n, "running"), status]).tolist(),
        "pipeline": [f"dataset_OR({p})" for p in ids.tolist()] * 3, "pipeline_json": jsons * 3,
        "return_status": [None] * (2 * n) + ["Traceback: boom" if f else "train_loss=..." for f in failed],
        "error": [None] * (2 * n) + ["Traceback: boom" if f else None for f in failed],
        "time": _times(base + 10 * n, 3 * n),
    })
    store.append("runs", runs, sweep)
    _write_history(store, sweep, ids[~failed], epochs, base + 20 * n, rng, attempt=0)


def _write_history(store: Store, sweep: int, ids: np.ndarray, epochs: int, base: int,
                   rng: np.random.Generator, attempt: int) -> None:
    n = len(ids)
    train, test = _curves(ids, epochs, rng)
    store.append("history", pa.table({
        "run_id": np.repeat(ids, epochs), "attempt": np.full(n * epochs, attempt, dtype=np.int64),
        "epoch": np.tile(np.arange(1, epochs + 1, dtype=np.int64), n),
        "train_loss": train.ravel(), "test_loss": test.ravel(),
        "train_acc": np.clip(100 - 50 * train.ravel(), 0, 100), "test_acc": np.clip(100 - 50 * test.ravel(), 0, 100),
        "seconds": np.full(n * epochs, 0.01), "time": _times(base, n * epochs),
    }), sweep)
    k = max(1, epochs // 10)
    grad = np.diff(train, axis=1)[:, -k:] if epochs > 1 else np.zeros((n, 1))
    slope = grad.mean(axis=1)
    lo, hi = np.minimum(train.min(1), test.min(1)), np.maximum(train.max(1), test.max(1))
    store.append("results", pa.table({
        "run_id": ids, "attempt": np.full(n, attempt, dtype=np.int64),
        "train_loss": train[:, -1], "test_loss": test[:, -1], "train_acc": 100 - 50 * train[:, -1],
        "test_acc": 100 - 50 * test[:, -1], "nb_params": (ids % 50 + 10).astype(np.int64),
        "duration_s": np.full(n, epochs * 0.01), "epochs": np.full(n, epochs, dtype=np.int64),
        "overfit": np.abs(test[:, -1] - train[:, -1]) / (hi - lo), "trainability": test.mean(1), "slope": slope,
        "time": _times(base + n * epochs, n),
    }), sweep)


def timed(action: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(first-call seconds, best-of-rest seconds, result)."""
    start = time.perf_counter()
    result = action()
    first = time.perf_counter() - start
    rest = []
    for _ in range(max(0, repeat - 1)):
        start = time.perf_counter()
        action()
        rest.append(time.perf_counter() - start)
    return first, min(rest) if rest else first, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", help="work folder (default: a temporary one, removed at the end)")
    parser.add_argument("--reuse", action="store_true", help="with --dir: reuse the store a previous run left there")
    args = parser.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_sql_"))
    work.mkdir(parents=True, exist_ok=True)
    store_path, db_path, imported = work / "store", work / "export.db", work / "imported"
    reuse = args.reuse and args.dir and store_path.is_dir()
    for old in (imported,) if reuse else (store_path, imported):
        shutil.rmtree(old, ignore_errors=True)
    try:
        rows: list[tuple[str, str, str]] = []
        if not reuse:
            start = time.perf_counter()
            build_store(store_path, args.runs, args.epochs)
            rows.append(("generate store", f"{time.perf_counter() - start:.1f} s", f"{args.runs:,} runs x {args.epochs} epochs"))
        with open_store(store_path) as session:
            history_rows = session.sql("SELECT count(*) FROM history_all").fetchall()[0][0]
            a_first, a, answer_a = timed(lambda: session.sql(QUERY_A).fetchall(), args.repeat)
            b_first, b, answer_b = timed(lambda: session.sql(QUERY_B).fetchall(), args.repeat)
            c_first, c, answer_c = timed(lambda: select_runs(session, Selection(equal=SELECTION)), args.repeat)
            d_first, d_, answer_d = timed(lambda: session.sql(QUERY_D).fetchall(), args.repeat)
            e_first, e, answer_e = timed(lambda: session.sql(QUERY_E).fetchall(), args.repeat)
        start = time.perf_counter()
        export(store_path, db_path)
        export_s = time.perf_counter() - start
        con = sqlite3.connect(db_path)
        sa_first, sa, lite_a = timed(lambda: con.execute(SQLITE_A).fetchall(), args.repeat)
        sb_first, sb, lite_b = timed(lambda: con.execute(SQLITE_B).fetchall(), args.repeat)
        sc_first, sc, lite_c = timed(lambda: con.execute(SQLITE_C, (SELECTION[0], int(SELECTION[1]))).fetchall(), args.repeat)
        sd_first, sd, lite_d = timed(lambda: con.execute(QUERY_D).fetchall(), args.repeat)
        se_first, se, lite_e = timed(lambda: con.execute(QUERY_E).fetchall(), args.repeat)
        con.close()
        _check(answer_a, lite_a, answer_b, lite_b, answer_c, lite_c)
        assert answer_d == lite_d and answer_d, "(d) answers differ"
        assert answer_e == lite_e, "(e) answers differ"
        start = time.perf_counter()
        import_db(db_path, imported)
        import_s = time.perf_counter() - start
        for name, (d1, d, s1, s) in {
            "(a) mean/std final test_loss per model x dataset key": (a_first, a, sa_first, sa),
            "(b) runs whose train loss rose over the last 10 %": (b_first, b, sb_first, sb),
            "(c) -param_name_and_value selection": (c_first, c, sc_first, sc),
            "(d) old SQL: mlp_funnel_width param_value > 9": (d_first, d_, sd_first, sd),
            "(e) old SQL: count(*) of every param_value > 2": (e_first, e, se_first, se),
        }.items():
            rows.append((name, f"DuckDB {d:.3f} s (first {d1:.3f} s)",
                         f"sqlite {s:.3f} s (first {s1:.3f} s); sqlite/DuckDB = {s / d:.2f}"))
        rows.append(("export to sqlite", f"{export_s:.1f} s", f"{os.path.getsize(db_path) / 1e6:.0f} MB"))
        rows.append(("import from sqlite", f"{import_s:.1f} s", "into a new store, without histories"))
        print(f"store: {args.runs:,} runs, {history_rows:,} history rows; {os.cpu_count()} CPUs; "
              f"mosaic {mosaic.__version__}")
        print(f"answers: (a) {len(answer_a)} groups, (b) {len(answer_b)} runs, (c) {len(answer_c)} runs, "
              f"(d) {len(answer_d)} runs, (e) {answer_e[0][0]:,} rows (agree with sqlite)")
        print("\n| step | time | notes |\n| --- | --- | --- |")
        for row in rows:
            print(f"| {' | '.join(row)} |")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


def _check(a: list, lite_a: list, b: list, lite_b: list, c: list, lite_c: list) -> None:
    assert [(x[0], x[1], x[4]) for x in a] == [(x[0], x[1], x[4]) for x in lite_a], "(a) groups differ"
    for ours, theirs in zip(a, lite_a, strict=True):
        mean, square, count = theirs[2], theirs[3], theirs[4]
        std = math.sqrt(max(0.0, square - mean * mean) * count / (count - 1)) if count > 1 else None
        assert math.isclose(ours[2], mean, rel_tol=1e-9), "(a) means differ"
        assert std is None or math.isclose(ours[3], std, rel_tol=1e-4, abs_tol=1e-9), "(a) stds differ"
    assert [r for (r,) in b] == [r for (r,) in lite_b], "(b) answers differ"
    assert c == sorted(r for (r,) in lite_c), "(c) answers differ"


if __name__ == "__main__":
    main()
