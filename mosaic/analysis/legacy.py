"""The original tool's four-table sqlite layout: export to it, import from it, rekey.

The original database (``CREATE TABLE params (run_id, param_name, param_value)`` and
``system``, ``runs``, ``run_results``, all without declared types) stores range values as
INTEGER and every other value as TEXT; failed runs have a ``traceback`` param and no
``run_results`` row; per-epoch histories live next to it in ``history_<id>.pt`` files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import sqlite3
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa

import mosaic
from mosaic.analysis.sql import SQLITE_HEADER, StoreSession, open_store
from mosaic.errors import LegacyError, StoreError, UsageError
from mosaic.store import Store, arrow_schema, is_store, now
from mosaic.sweep import legacy_params, read_pipelines

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
HISTORY_KEYS = ("train_loss", "test_loss", "train_acc", "test_acc")
_SYNTHESIZED = ("status", "traceback")
_INTEGER = re.compile(r"-?\d+")


# -- reading an original database ---------------------------------------------------------
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
    status_param: dict[int, str] = {}
    traceback: dict[int, str] = {}
    pipeline_json: dict[int, str] = {}
    for run_id, name, value in con.execute("SELECT run_id, param_name, param_value FROM params ORDER BY rowid"):
        text = _text(value)
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
            params["time"].append(clock())
    runs: dict[str, list[Any]] = defaultdict(list)
    for run_id, status, pipeline, return_status in con.execute(
        "SELECT run_id, status, pipeline, return_status FROM runs ORDER BY rowid"
    ):
        error = traceback.get(run_id) or None
        for key, value in (("run_id", run_id), ("attempt", 0), ("status", status or status_param.get(run_id)),
                           ("pipeline", pipeline), ("pipeline_json", pipeline_json.get(run_id)),
                           ("return_status", _text(return_status)), ("error", error), ("time", clock())):
            runs[key].append(value)
    columns = {row[1] for row in con.execute("PRAGMA table_info(run_results)")}
    select = ", ".join(f'"{c}"' if c in columns else "NULL" for c in RESULT_COLUMNS)
    results: dict[str, list[Any]] = defaultdict(list)
    for row in con.execute(f"SELECT {select} FROM run_results ORDER BY rowid"):
        values = dict(zip(RESULT_COLUMNS, row, strict=True))
        values["duration_s"] = values.pop("duration(s)")
        values["nb_params"] = _int(values["nb_params"])
        values["epochs"] = _int(values["epochs"])
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


class _Clock:
    """Strictly increasing timestamps, so rows later in the original win in the views."""

    def __init__(self) -> None:
        self.base = now()
        self.step = 0

    def __call__(self) -> dt.datetime:
        self.step += 1
        return self.base + dt.timedelta(microseconds=self.step)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _int(value: Any) -> int | None:
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
        column = pa.array([_text(v) for v in values], type=pa.string())
    return pa.table({"param_name": pa.array([n for n, _ in rows], type=pa.string()), "param_value": column})


def _read_histories(folder: Path, run_ids: Iterable[int], clock: _Clock) -> pa.Table:
    if not folder.is_dir():
        raise LegacyError(f"--history-dir {folder}: not a folder; give the original's run_files_path")
    import torch  # only here: reading the original's history files needs it

    columns: dict[str, list[Any]] = defaultdict(list)
    for run_id in sorted(set(run_ids)):
        file = folder / f"history_{run_id}.pt"
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


# -- export ----------------------------------------------------------------------------
def export(store: str | os.PathLike[str], out_db: str | os.PathLike[str],
           history_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write a store as an original-tool sqlite file (the four tables, nothing else).

    Reads one snapshot of the store, so the file is consistent while a sweep writes; writes
    a temporary file and renames it. ``history_dir`` also gets ``history_<id>.pt`` files.
    """
    out = Path(out_db)
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; give a .db file name")
    if out.exists() and not _is_sqlite_file(out):
        raise UsageError(f"{out}: exists and is not a sqlite database; refusing to overwrite it, choose another name")
    if not out.parent.exists():
        raise UsageError(f"{out}: folder {out.parent} does not exist; create it first")
    if Path(store).resolve() == out.resolve():
        raise UsageError(f"{out}: is the database being exported; choose another name")
    with open_store(store, live=False) as session:
        snapshot = session.retry(lambda: _snapshot(session, history=history_dir is not None))
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        _write_sqlite(tmp, snapshot)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    if history_dir is not None:
        write_histories(snapshot["history"], history_dir)
    return out


def _snapshot(session: StoreSession, history: bool) -> dict[str, list[tuple]]:
    con = session.con
    data = {
        "params": con.execute("""
            SELECT p.run_id, p.param_name, p.param_value FROM params p
            LEFT JOIN (SELECT run_id, param_name, min(time) AS first FROM params_all GROUP BY ALL) f
                USING (run_id, param_name)
            ORDER BY p.run_id, p.param_name = 'traceback', p.param_name = 'status', f.first, p.param_name
        """).fetchall(),
        "runs": con.execute("SELECT run_id, status, pipeline, return_status FROM runs ORDER BY run_id").fetchall(),
        "run_results": con.execute(
            f"SELECT {', '.join(_quote(c) for c in RESULT_COLUMNS)} FROM run_results ORDER BY run_id"
        ).fetchall(),
        "system": con.execute("SELECT param_name, param_value FROM system").fetchall(),
    }
    if history:
        data["history"] = con.execute(
            f"SELECT run_id, {', '.join(HISTORY_KEYS)} FROM history ORDER BY run_id, epoch"
        ).fetchall()
    return data


def _quote(column: str) -> str:
    return f'"{column}"'


def _write_sqlite(path: Path, data: dict[str, list[tuple]]) -> None:
    pipelines = {run_id: value for run_id, name, value in data["params"] if name == "pipeline"}
    con = sqlite3.connect(path)
    try:
        for sql in LEGACY_SCHEMA.values():
            con.execute(sql)
        con.executemany("INSERT INTO params VALUES (?, ?, ?)", (
            (run_id, name, _typed(value, name in _integer_names(pipelines.get(run_id))))
            for run_id, name, value in data["params"]
        ))
        con.executemany("INSERT INTO runs VALUES (?, ?, ?, ?)", data["runs"])
        con.executemany(f"INSERT INTO run_results VALUES ({', '.join('?' * len(RESULT_COLUMNS))})", data["run_results"])
        con.executemany("INSERT INTO system VALUES (?, ?)", data["system"])
        con.commit()
    finally:
        con.close()


@lru_cache(maxsize=4096)
def _integer_names(pipeline_json: str | None) -> frozenset[str]:
    """The param names whose value the pipeline holds as a JSON integer (ranges)."""
    if not pipeline_json:
        return frozenset()
    try:
        pipeline = json.loads(pipeline_json)
        pairs = legacy_params(pipeline)
    except (ValueError, TypeError, KeyError, AttributeError):
        return frozenset()
    return frozenset(name for name, value in pairs if isinstance(value, int) and not isinstance(value, bool))


def _typed(value: str | None, integer: bool) -> Any:
    if integer and value is not None and _INTEGER.fullmatch(value):
        return int(value)
    return value


def write_histories(rows: list[tuple], folder: str | os.PathLike[str]) -> int:
    """Write ``history_<id>.pt`` files (dict of lists, the original's format); returns how many."""
    import torch  # only here: the original's history files are torch pickles

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    per_run: dict[int, dict[str, list[float]]] = {}
    for run_id, *values in rows:
        history = per_run.setdefault(run_id, {k: [] for k in HISTORY_KEYS})
        for key, value in zip(HISTORY_KEYS, values, strict=True):
            history[key].append(value)
    for run_id, history in per_run.items():
        file = target / f"history_{run_id}.pt"
        tmp = file.with_name(f".{file.name}.{uuid.uuid4().hex[:6]}.tmp")
        torch.save(history, tmp)
        os.replace(tmp, file)
    return len(per_run)


def _is_sqlite_file(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(16) == SQLITE_HEADER


# -- savedb ------------------------------------------------------------------------------
def last_store_file() -> Path:
    """Where ``mosaic run`` records the last store used (see ``mosaic.exec.control``)."""
    from mosaic.exec.control import state_dir  # light: no Dask import

    return state_dir() / "last_store"


def last_store() -> Path:
    """The store the last ``mosaic run`` used; UsageError when none is recorded."""
    record = last_store_file()
    if not record.is_file():
        raise UsageError(f"no store given and none recorded in {record}; name the store: mosaic savedb STORE COPY.db")
    path = Path(record.read_text(encoding="utf-8").strip())
    if not is_store(path):
        raise UsageError(f"the last store used, {path} (from {record}), is no longer there; name the store: mosaic savedb STORE COPY.db")
    return path


def savedb(store: str | os.PathLike[str] | None, copy_path: str | os.PathLike[str]) -> Path:
    """A consistent sqlite snapshot of a store (default: the last one used), also mid-sweep."""
    return export(last_store() if store is None else store, copy_path)


# -- import ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportResult:
    """What ``import_db`` brought into a store."""

    database: Path
    store: Path
    sweep_id: int
    statuses: dict[str, int] = field(default_factory=dict)
    params: int = 0
    results: int = 0
    histories: int = 0

    @property
    def runs(self) -> int:
        """How many runs were imported."""
        return sum(self.statuses.values())

    def render(self) -> str:
        """One line for the CLI."""
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        return (
            f"{self.runs} runs ({statuses or 'none'}), {self.params} params, {self.results} results and "
            f"{self.histories} histories imported from {self.database} into {self.store} (sweep {self.sweep_id})"
        )


def import_db(legacy_db: str | os.PathLike[str], store: str | os.PathLike[str],
              history_dir: str | os.PathLike[str] | None = None) -> ImportResult:
    """Bring an original database (and its ``history_<id>.pt`` files) into a new or existing store.

    Run ids are kept; ids already used in the store are refused before anything is written.
    Nothing is computed: what the original did not store stays null.
    """
    from mosaic.analysis.selection import format_ids

    db = Path(legacy_db)
    if not db.is_file() or not _is_sqlite_file(db):
        raise LegacyError(f"{db}: not a sqlite database of the original tool")
    tables = read_legacy(db, history_dir=history_dir)
    ids = set(tables["runs"].column("run_id").to_pylist()) | set(tables["params"].column("run_id").to_pylist())
    target = Store(store, create=True)
    with open_store(target.path) as session:
        taken = {r for (r,) in session.fetch("SELECT run_id FROM runs_all UNION SELECT run_id FROM params_all")}
    clash = sorted(ids & taken)
    if clash:
        raise StoreError(f"{target.path}: run ids {format_ids(clash)} of {db} are already in this store; "
                         "import into a new store instead")
    system = dict(zip(tables["system"].column("param_name").to_pylist(), tables["system"].column("param_value").to_pylist(), strict=True))
    first_free = max([max(ids, default=0) + 1] + [_int(system.get("next_run_id")) or 1])
    target.reserve_run_ids_from(first_free)
    sweep_id = target.new_sweep_id()
    started = now()
    sweep = {"sweep_id": sweep_id, "kind": "import", "config_path": str(db.resolve()), "started": started,
             "host": socket.gethostname(), "mosaic_version": mosaic.__version__,
             "python_version": sys.version.split()[0], "store_path": str(target.path)}
    target.append("sweeps", [sweep], sweep_id)
    for table in ("params", "runs", "results", "history"):
        if table in tables:
            target.append(table, tables[table], sweep_id)
    target.append("sweeps", [{**sweep, "ended": now()}], sweep_id)
    history = tables.get("history")
    return ImportResult(
        database=db, store=target.path, sweep_id=sweep_id,
        statuses=dict(Counter(tables["runs"].column("status").to_pylist())),
        params=tables["params"].num_rows, results=tables["results"].num_rows,
        histories=len(set(history.column("run_id").to_pylist())) if history is not None else 0,
    )


# -- rekey -------------------------------------------------------------------------------
def _unkeyed(pipeline: Any) -> str | None:
    """A pipeline's identity without its ``key`` fields (values compared as text)."""
    if not isinstance(pipeline, list) or not all(isinstance(s, dict) for s in pipeline):
        return None
    return json.dumps([sorted((k, str(v)) for k, v in s.items() if k != "key") for s in pipeline])


def rekey(pipeline_file: str | os.PathLike[str], store: str | os.PathLike[str]) -> int:
    """Give the runs whose pipeline matches one of the file (keys aside) that pipeline's keys.

    On a store, appends superseding ``<type>_key`` and ``pipeline`` params rows; on an
    original ``.db``, updates them in place as the original did. Returns how many keys changed.
    """
    wanted = {}
    for pipeline in read_pipelines(pipeline_file):
        identity = _unkeyed(pipeline)
        if identity is not None:
            wanted[identity] = pipeline
    path = Path(store)
    if path.is_file() and _is_sqlite_file(path):
        return _rekey_sqlite(path, wanted)
    target = Store(path)
    with open_store(target.path, live=False) as session:
        stored = session.fetch("""
            SELECT r.run_id, coalesce(p.param_value, r.pipeline_json) FROM runs r
            LEFT JOIN params p ON p.run_id = r.run_id AND p.param_name = 'pipeline'""")
        current = session.fetch("SELECT run_id, param_name, param_value FROM params WHERE param_name LIKE '%_key'")
    updates = _key_updates(stored, current, wanted)
    if not updates:
        return 0
    stamp = now()
    columns = {"run_id": [u[0] for u in updates], "param_name": [u[1] for u in updates],
               "param_value": [u[2] for u in updates], "time": [stamp] * len(updates)}
    sweep_id = target.new_sweep_id()
    target.append("sweeps", [{"sweep_id": sweep_id, "kind": "rekey", "config_path": str(Path(pipeline_file).resolve()),
                              "started": stamp, "ended": stamp, "store_path": str(target.path)}], sweep_id)
    target.append("params", pa.table(columns), sweep_id)
    return sum(1 for u in updates if u[1] != "pipeline")


def _key_updates(stored: list[tuple], current: list[tuple], wanted: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(run_id, param_name, new value) for every key param (and pipeline) to rewrite."""
    values = {(r, n): v for r, n, v in current}
    updates = []
    for run_id, text in stored:
        try:
            pipeline = json.loads(text) if text else None
        except ValueError:
            continue
        new = wanted.get(_unkeyed(pipeline))
        if new is None:
            continue
        pipeline_changed = False
        for section, new_section in zip(pipeline, new, strict=True):
            if "key" not in new_section:
                continue
            key = str(new_section["key"])
            if section.get("key") != new_section["key"]:
                section["key"] = new_section["key"]
                pipeline_changed = True
            name = f"{new_section.get('type')}_key"
            if values.get((run_id, name)) != key:
                updates.append((run_id, name, key))
        if pipeline_changed:
            updates.append((run_id, "pipeline", json.dumps(pipeline)))
    return updates


def _rekey_sqlite(path: Path, wanted: dict[str, Any]) -> int:
    con = sqlite3.connect(path)
    try:
        stored = con.execute("SELECT run_id, param_value FROM params WHERE param_name = 'pipeline'").fetchall()
        current = con.execute("SELECT run_id, param_name, param_value FROM params WHERE param_name LIKE '%_key'").fetchall()
        updates = _key_updates(stored, current, wanted)
        for run_id, name, value in updates:
            cursor = con.execute("UPDATE params SET param_value = ? WHERE run_id = ? AND param_name = ?", (value, run_id, name))
            if cursor.rowcount == 0:
                con.execute("INSERT INTO params VALUES (?, ?, ?)", (run_id, name, value))
        con.commit()
    except sqlite3.DatabaseError as exc:
        raise LegacyError(f"{path}: cannot rekey this database ({exc})") from None
    finally:
        con.close()
    return sum(1 for u in updates if u[1] != "pipeline")
