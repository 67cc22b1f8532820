"""The original tool's four-table sqlite layout: export to it, import from it, rekey.

Reading an original database is :mod:`mosaic.store.legacy_db` (the second backend of the
store's reader); this module writes that layout from a store (``export``, ``savedb``),
brings one into a store (``import_db``) and rewrites keys (``rekey``). Range values are
written as INTEGER and every other value as TEXT, as the original did.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

import mosaic
from mosaic.errors import LegacyError, StoreError, UsageError
from mosaic.store import run_files
from mosaic.store.files import atomic_write
from mosaic.store.layout import HISTORY_KEYS, history_path, last_store
from mosaic.store.legacy_db import LEGACY_SCHEMA, RESULT_COLUMNS, as_int, is_sqlite, read_legacy
from mosaic.store.reader import Reader, open_reader
from mosaic.store.records import integer_names, typed_value
from mosaic.store.selection import format_ids
from mosaic.store.writer import Store, now
from mosaic.sweep import read_pipelines


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
    if out.exists() and not is_sqlite(out):
        raise UsageError(f"{out}: exists and is not a sqlite database; refusing to overwrite it, choose another name")
    if not out.parent.exists():
        raise UsageError(f"{out}: folder {out.parent} does not exist; create it first")
    if Path(store).resolve() == out.resolve():
        raise UsageError(f"{out}: is the database being exported; choose another name")
    with open_reader(store, live=False) as reader:
        snapshot = reader.snapshot(lambda: _snapshot(reader, history=history_dir is not None))
    atomic_write(out, lambda tmp: _write_sqlite(tmp, snapshot))
    if history_dir is not None:
        write_histories(snapshot["history"], history_dir)
    return out


def _rows(table: pa.Table, columns: tuple[str, ...] | list[str]) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in columns), strict=True)) if table.num_rows else []


def _snapshot(reader: Reader, history: bool) -> dict[str, list[tuple]]:
    data = {
        "params": _rows(reader.params(), ("run_id", "param_name", "param_value")),
        "runs": _rows(reader.runs(), ("run_id", "status", "pipeline", "return_status")),
        "run_results": _rows(reader.results(), RESULT_COLUMNS),
        "system": reader.system(),
    }
    if history:
        data["history"] = _rows(reader.history(), ("run_id", *HISTORY_KEYS))
    return data


def _write_sqlite(path: Path, data: dict[str, list[tuple]]) -> None:
    pipelines = {run_id: value for run_id, name, value in data["params"] if name == "pipeline"}
    con = sqlite3.connect(path)
    try:
        for sql in LEGACY_SCHEMA.values():
            con.execute(sql)
        con.executemany("INSERT INTO params VALUES (?, ?, ?)", (
            (run_id, name, typed_value(value, name in integer_names(pipelines.get(run_id))))
            for run_id, name, value in data["params"]
        ))
        con.executemany("INSERT INTO runs VALUES (?, ?, ?, ?)", data["runs"])
        con.executemany(f"INSERT INTO run_results VALUES ({', '.join('?' * len(RESULT_COLUMNS))})", data["run_results"])
        con.executemany("INSERT INTO system VALUES (?, ?)", data["system"])
        con.commit()
    finally:
        con.close()


def write_histories(rows: list[tuple], folder: str | os.PathLike[str]) -> int:
    """Write ``history_<id>.pt`` files from the store's ``(run_id, *HISTORY_KEYS)`` rows: the
    files runs write with ``[MONITOR] legacy_history = True``; returns how many."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    per_run: dict[int, list[dict[str, Any]]] = {}
    for run_id, *values in rows:
        per_run.setdefault(run_id, []).append(dict(zip(HISTORY_KEYS, values, strict=True)))
    for run_id, epochs in per_run.items():
        run_files.write_history(history_path(target, run_id), epochs)
    return len(per_run)


# -- savedb ------------------------------------------------------------------------------
def savedb(store: str | os.PathLike[str] | None, copy_path: str | os.PathLike[str]) -> Path:
    """A consistent sqlite snapshot of a store (default: the last one used), also mid-sweep."""
    return export(last_store("mosaic savedb STORE COPY.db") if store is None else store, copy_path)


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
    db = Path(legacy_db)
    if not db.is_file() or not is_sqlite(db):
        raise LegacyError(f"{db}: not a sqlite database of the original tool")
    tables = read_legacy(db, history_dir=history_dir)
    ids = set(tables["runs"].column("run_id").to_pylist()) | set(tables["params"].column("run_id").to_pylist())
    target = Store(store, create=True)
    with open_reader(target) as reader:
        taken = reader.used_run_ids()
    clash = sorted(ids & taken)
    if clash:
        raise StoreError(f"{target.path}: run ids {format_ids(clash)} of {db} are already in this store; "
                         "import into a new store instead")
    system = dict(zip(tables["system"].column("param_name").to_pylist(), tables["system"].column("param_value").to_pylist(), strict=True))
    first_free = max([max(ids, default=0) + 1] + [as_int(system.get("next_run_id")) or 1])
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
    if path.is_file() and is_sqlite(path):
        return _rekey_sqlite(path, wanted)
    target = Store(path)
    with open_reader(target, live=False) as reader:
        runs, params = reader.snapshot(lambda: (reader.runs(), reader.params(names=["pipeline"], keys=True)))
    pipelines = {r: v for r, n, v in _rows(params, ("run_id", "param_name", "param_value")) if n == "pipeline"}
    stored = [(r, j if pipelines.get(r) is None else pipelines[r]) for r, j in _rows(runs, ("run_id", "pipeline_json"))]
    current = [row for row in _rows(params, ("run_id", "param_name", "param_value")) if row[1] != "pipeline"]
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
            pipeline: Any = json.loads(text) if text else None
        except ValueError:
            continue
        identity = _unkeyed(pipeline)
        new = None if identity is None else wanted.get(identity)
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
