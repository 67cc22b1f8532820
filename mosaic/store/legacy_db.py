"""Reading a database written by the original tool (its four sqlite tables + history files).

The original database (``CREATE TABLE params (run_id, param_name, param_value)`` and
``system``, ``runs``, ``run_results``, all without declared types) stores range values as
INTEGER and every other value as TEXT; failed runs have a ``traceback`` param and no
``run_results`` row; per-epoch histories live next to it in ``history_<id>.pt`` files.
:func:`read_legacy` turns it into store-shaped Arrow tables, the second backend of
:mod:`mosaic.store.reader`.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from mosaic.errors import LegacyError
from mosaic.store.layout import HISTORY_KEYS, history_path, is_store
from mosaic.store.writer import arrow_schema, now

SQLITE_HEADER = b"SQLite format 3\x00"
#: The original's tables, exactly as it created them (column order and spelling included).
LEGACY_SCHEMA = {
    "params": "CREATE TABLE params (run_id, param_name, param_value)",
    "run_results": 'CREATE TABLE run_results (run_id, train_loss, test_loss, train_acc, test_acc,\n'
                   '                              nb_params, "duration(s)", epochs, overfit, trainability, slope)',
    "system": "CREATE TABLE system (param_name, param_value)",
    "runs": "CREATE TABLE runs (run_id, status, pipeline, return_status)",
}
RESULT_COLUMNS = ("run_id", "train_loss", "test_loss", "train_acc", "test_acc", "nb_params",
                  "duration(s)", "epochs", "overfit", "trainability", "slope")


def is_sqlite(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a file that starts with the sqlite header."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(16) == SQLITE_HEADER


def read_legacy(db_path: str | os.PathLike[str], history_dir: str | os.PathLike[str] | None = None) -> dict[str, pa.Table]:
    """An original database as store-shaped Arrow tables: runs, params, results, history, system.

    ``status``/``traceback`` params become the runs' status and error (the views make them
    again); later rows win, as in the original's in-place updates. With ``history_dir``,
    ``history_<id>.pt`` files become history rows (epochs 1..n, attempt 0).
    """
    path = Path(db_path)
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise LegacyError(f"{path}: cannot open as sqlite ({exc})") from None
    try:
        return _read_legacy(con, path, history_dir)
    except sqlite3.DatabaseError as exc:
        raise LegacyError(f"{path}: not a readable database of the original tool ({exc})") from None
    finally:
        con.close()


def _read_legacy(con: sqlite3.Connection, path: Path, history_dir: str | os.PathLike[str] | None) -> dict[str, pa.Table]:
    present = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = [t for t in LEGACY_SCHEMA if t not in present]
    if missing:
        raise LegacyError(f"{path}: no table {', '.join(missing)}; not a database written by the original tool "
                          "(it has params, runs, run_results and system)")
    clock = _Clock()
    params: dict[str, list[Any]] = defaultdict(list)
    status_param: dict[int, str | None] = {}
    traceback: dict[int, str | None] = {}
    pipeline_json: dict[int, str | None] = {}
    for run_id, name, value in con.execute("SELECT run_id, param_name, param_value FROM params ORDER BY rowid"):
        text = as_text(value)
        if name == "status":
            status_param[run_id] = text
        elif name == "traceback":
            traceback[run_id] = text
        else:
            if name == "pipeline":
                pipeline_json[run_id] = text
            params["run_id"].append(run_id)
            params["param_name"].append(name)
            params["param_value"].append(text)
            params["param_int"].append(value if isinstance(value, int) else None)  # sqlite INTEGER
            params["time"].append(clock())
    runs: dict[str, list[Any]] = defaultdict(list)
    for run_id, status, pipeline, return_status in con.execute(
        "SELECT run_id, status, pipeline, return_status FROM runs ORDER BY rowid"
    ):
        error = traceback.get(run_id) or None
        for key, value in (("run_id", run_id), ("attempt", 0), ("status", status or status_param.get(run_id)),
                           ("pipeline", pipeline), ("pipeline_json", pipeline_json.get(run_id)),
                           ("return_status", as_text(return_status)), ("error", error), ("time", clock())):
            runs[key].append(value)
    columns = {row[1] for row in con.execute("PRAGMA table_info(run_results)")}
    select = ", ".join(f'"{c}"' if c in columns else "NULL" for c in RESULT_COLUMNS)
    results: dict[str, list[Any]] = defaultdict(list)
    for row in con.execute(f"SELECT {select} FROM run_results ORDER BY rowid"):
        values = dict(zip(RESULT_COLUMNS, row, strict=True))
        values["duration_s"] = values.pop("duration(s)")
        values["nb_params"] = as_int(values["nb_params"])
        values["epochs"] = as_int(values["epochs"])
        for key, value in values.items():
            results[key].append(value)
        results["attempt"].append(0)
        results["time"].append(clock())
    system = con.execute("SELECT param_name, param_value FROM system ORDER BY rowid").fetchall()
    tables = {
        "runs": _table("runs", runs),
        "params": _table("params", params),
        "results": _table("results", results),
        "system": _system_table(system),
    }
    if history_dir is not None:
        tables["history"] = _read_histories(Path(history_dir), runs["run_id"], clock)
    return tables


def saved_from(tables: Mapping[str, pa.Table]) -> Path | None:
    """The Mosaic store a database was saved from (``mosaic savedb``/``export`` keep its
    ``database_path`` param), when it is one store that still exists here."""
    params = tables["params"]
    names, values = params.column("param_name").to_pylist(), params.column("param_value").to_pylist()
    paths = {v for n, v in zip(names, values, strict=True) if n == "database_path" and v}
    if len(paths) != 1:
        return None
    path = Path(paths.pop())
    return path if is_store(path) else None


class _Clock:
    """Strictly increasing timestamps, so rows later in the original win in the views."""

    def __init__(self) -> None:
        self.base = now()
        self.step = 0

    def __call__(self) -> dt.datetime:
        self.step += 1
        return self.base + dt.timedelta(microseconds=self.step)


def as_text(value: Any) -> str | None:
    """A sqlite value as text (None stays None)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def as_int(value: Any) -> int | None:
    """A sqlite value as an integer; None when it is not one."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _table(name: str, columns: Mapping[str, list[Any]]) -> pa.Table:
    schema = arrow_schema(name)
    rows = max((len(v) for v in columns.values()), default=0)
    arrays = [pa.array(columns.get(f.name, [None] * rows), type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _system_table(rows: list[tuple[Any, Any]]) -> pa.Table:
    values = [v for _, v in rows]
    if all(isinstance(v, int) for v in values):
        column = pa.array(values, type=pa.int64())
    else:
        column = pa.array([as_text(v) for v in values], type=pa.string())
    return pa.table({"param_name": pa.array([n for n, _ in rows], type=pa.string()), "param_value": column})


def _read_histories(folder: Path, run_ids: Iterable[int], clock: _Clock) -> pa.Table:
    if not folder.is_dir():
        raise LegacyError(f"--history-dir {folder}: not a folder; give the original's run_files_path")
    import torch  # only here: reading the original's history files needs it

    columns: dict[str, list[Any]] = defaultdict(list)
    for run_id in sorted(set(run_ids)):
        file = history_path(folder, run_id)
        if not file.is_file():
            continue
        try:
            history = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # a corrupt file names itself rather than stopping the import
            raise LegacyError(f"{file}: cannot read this history file ({exc})") from None
        series = {k: _as_list(history.get(k)) for k in HISTORY_KEYS}
        length = max(len(s) for s in series.values())
        for epoch in range(length):
            columns["run_id"].append(run_id)
            columns["attempt"].append(0)
            columns["epoch"].append(epoch + 1)
            for key in HISTORY_KEYS:
                columns[key].append(float(series[key][epoch]) if epoch < len(series[key]) else None)
            columns["time"].append(clock())
    return _table("history", columns)


def _as_list(values: Any) -> list[Any]:
    if values is None:
        return []
    if hasattr(values, "tolist"):
        values = values.tolist()
    return [v.item() if hasattr(v, "item") else v for v in values]
