"""The Parquet store: the only module that knows file paths inside a store.

Layout (hive-partitioned, one partition per sweep)::

    <store>/_mosaic.json                      marker + format version
    <store>/<table>/sweep=<id>/<name>.parquet  rows, append-only
    <store>/_state/next_run_id, next_sweep_id  counters, changed under _state/ids.lock
    <store>/_control/                          pause requests and driver heartbeats
    <store>/run_files/                         checkpoints and logs when the config names none

Every file is written under a temporary name and renamed, so a reader never sees half a
file and a killed writer leaves no corrupt data. Rows are only appended; a later row for
the same key supersedes an earlier one (the views in analysis/sql.py pick the latest by
``time``). ``compact`` rewrites a partition's small files into one without changing any view.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from mosaic import schemas
from mosaic.errors import StoreError

FORMAT_VERSION = 1
_MARKER = "_mosaic.json"
_ARROW_TYPES = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
_clock_lock = threading.Lock()
_last_time = [0]


def now() -> dt.datetime:
    """A UTC timestamp that strictly increases within this process (microsecond steps).

    Superseding rows are ordered by time, so two rows written back to back must differ.
    """
    with _clock_lock:
        micros = max(time.time_ns() // 1000, _last_time[0] + 1)
        _last_time[0] = micros
    return dt.datetime.fromtimestamp(micros / 1e6, tz=dt.timezone.utc)


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a store table, from ``schemas/tables.json``."""
    return pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in schemas.table_columns(table)])


def is_store(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a Mosaic store folder."""
    return (Path(path) / _MARKER).is_file()


@dataclass(frozen=True)
class CompactResult:
    """What ``compact`` did."""

    store: Path
    partitions: int
    files_before: int
    files_after: int

    def render(self) -> str:
        """One line for the CLI."""
        return (
            f"{self.store}: {self.partitions} partitions compacted, "
            f"{self.files_before} files -> {self.files_after}"
        )


class Store:
    """A store folder. ``Store(path, create=True)`` makes one if it does not exist."""

    def __init__(self, path: str | os.PathLike[str], create: bool = False) -> None:
        self.path = Path(path)
        if not is_store(self.path):
            if not create:
                if self.path.exists() and self.path.is_file():
                    raise StoreError(f"{self.path}: is a file, not a Mosaic store (a folder); give the store folder")
                raise StoreError(f"{self.path}: no Mosaic store here; create one with 'mosaic run CONFIG {self.path}'")
            if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
                raise StoreError(f"{self.path}: exists and is not an empty folder nor a Mosaic store; choose another path")
            self.path.mkdir(parents=True, exist_ok=True)
            _atomic_write_text(self.path / _MARKER, json.dumps({"format": FORMAT_VERSION, "tool": "mosaic"}))
        self._lock = FileLock(str(self.state_dir / "ids.lock"))

    # -- paths -------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        """Counters and locks."""
        folder = self.path / "_state"
        folder.mkdir(exist_ok=True)
        return folder

    @property
    def control_dir(self) -> Path:
        """Pause requests and driver heartbeats."""
        folder = self.path / "_control"
        folder.mkdir(exist_ok=True)
        return folder

    @property
    def default_run_files(self) -> Path:
        """Where checkpoints and logs go when the config has no run_files_path."""
        return self.path / "run_files"

    def table_dir(self, table: str) -> Path:
        """The folder of one table."""
        return self.path / table

    def table_glob(self, table: str) -> str:
        """A glob over every Parquet file of a table (for DuckDB's read_parquet)."""
        return str(self.table_dir(table) / "*" / "*.parquet")

    def files(self, table: str, sweep_id: int | None = None) -> list[Path]:
        """The Parquet files of a table (one sweep's, or all), oldest name first."""
        base = self.table_dir(table)
        pattern = f"sweep={sweep_id}/*.parquet" if sweep_id is not None else "sweep=*/*.parquet"
        return sorted(base.glob(pattern))

    def sweep_ids(self) -> list[int]:
        """Sweep ids that have data in any table."""
        found = set()
        for table in schemas.table_names():
            for folder in self.table_dir(table).glob("sweep=*"):
                found.add(int(folder.name.split("=", 1)[1]))
        return sorted(found)

    # -- ids -----------------------------------------------------------------------------
    def _bump(self, name: str, count: int) -> int:
        counter = self.state_dir / name
        with self._lock:
            first = int(counter.read_text()) if counter.exists() else 1
            _atomic_write_text(counter, str(first + count))
        return first

    def allocate_run_ids(self, count: int) -> range:
        """Reserve ``count`` consecutive run ids, unique across concurrent sweeps."""
        first = self._bump("next_run_id", count)
        return range(first, first + count)

    def new_sweep_id(self) -> int:
        """Reserve a new sweep id."""
        return self._bump("next_sweep_id", 1)

    def next_run_id(self) -> int:
        """The id the next allocated run would get (the legacy ``system.next_run_id``)."""
        counter = self.state_dir / "next_run_id"
        with self._lock:
            return int(counter.read_text()) if counter.exists() else 1

    def reserve_run_ids_from(self, first_free: int) -> None:
        """Make sure later allocations start at ``first_free`` or above (used by import)."""
        counter = self.state_dir / "next_run_id"
        with self._lock:
            current = int(counter.read_text()) if counter.exists() else 1
            if first_free > current:
                _atomic_write_text(counter, str(first_free))

    # -- writing -------------------------------------------------------------------------
    def append(self, table: str, rows: Iterable[Mapping[str, Any]] | pa.Table, sweep_id: int) -> Path | None:
        """Append rows to a table's partition of ``sweep_id`` as one new Parquet file.

        Missing columns become null and ``time`` defaults to now; returns the file written.
        """
        schema = arrow_schema(table)
        if isinstance(rows, pa.Table):
            data = _conform(rows, schema)
        else:
            rows = list(rows)
            if not rows:
                return None
            stamp = now()
            columns = {}
            for field in schema:
                if field.name == "time":
                    columns["time"] = [r.get("time") or stamp for r in rows]
                else:
                    columns[field.name] = [r.get(field.name) for r in rows]
            data = pa.table(columns, schema=schema)
        if data.num_rows == 0:
            return None
        folder = self.table_dir(table) / f"sweep={sweep_id}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        return _atomic_write_table(data, folder / name)

    def compact(self, sweep_id: int | None = None) -> CompactResult:
        """Merge each partition's files into one (all sweeps, or one); views are unchanged."""
        partitions = before = after = 0
        for table in schemas.table_names():
            sweeps = [sweep_id] if sweep_id is not None else [
                int(f.name.split("=", 1)[1]) for f in self.table_dir(table).glob("sweep=*")
            ]
            for sweep in sweeps:
                files = self.files(table, sweep)
                before += len(files)
                if len(files) <= 1:
                    after += len(files)
                    continue
                schema = arrow_schema(table)
                merged = pa.concat_tables([_conform(pq.read_table(f), schema) for f in files])
                folder = files[0].parent
                # keep the name sortable before any file written after compaction started
                target = folder / f"{files[-1].stem}-c.parquet"
                _atomic_write_table(merged, target)
                for old in files:
                    old.unlink(missing_ok=True)
                partitions += 1
                after += 1
        return CompactResult(self.path, partitions, before, after)


def compact(store: str | os.PathLike[str]) -> CompactResult:
    """Merge each sweep's small Parquet files into one file per table; views are unchanged."""
    return Store(store).compact()


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for field in schema:
        if field.name in data.column_names:
            columns.append(data.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(data.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _atomic_write_table(data: pa.Table, target: Path) -> Path:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        pq.write_table(data, tmp, compression="zstd")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _atomic_write_text(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
