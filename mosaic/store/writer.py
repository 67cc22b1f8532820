"""The store writer: ``Store`` appends rows, allocates ids and compacts partitions.

Every file is written with :func:`~mosaic.store.files.atomic_write`, so a reader never sees
half a file and a killed writer leaves no corrupt data. Rows are only appended; a later row
for the same key supersedes an earlier one (the readers pick the latest by ``time``).
``compact`` rewrites a partition's small files into one without changing what a reader sees.
Paths come from :mod:`mosaic.store.layout`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from mosaic import schemas
from mosaic.errors import StoreError
from mosaic.store.files import atomic_write
from mosaic.store.layout import (
    Layout,
    compacted_name,
    is_store,
    last_store,
    new_file_name,
    visible_files,
    write_order,
)

FORMAT_VERSION = 1
COMPACT_WAIT_S = 600.0  # how long a compaction waits for another one to end
_TEST_PAUSE = "MOSAIC_TEST_COMPACT_PAUSE_S"  # see _test_pause: for tests only
_ARROW_TYPES = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
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


class Store(Layout):
    """A store folder. ``Store(path, create=True)`` makes one if it does not exist."""

    def __init__(self, path: str | os.PathLike[str], create: bool = False) -> None:
        super().__init__(path)
        if not is_store(self.path):
            if not create:
                if self.path.exists() and self.path.is_file():
                    raise StoreError(f"{self.path}: is a file, not a Mosaic store (a folder); give the store folder")
                raise StoreError(f"{self.path}: no Mosaic store here; create one with 'mosaic run CONFIG {self.path}'")
            if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
                raise StoreError(f"{self.path}: exists and is not an empty folder nor a Mosaic store; choose another path")
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write(self.marker, json.dumps({"format": FORMAT_VERSION, "tool": "mosaic"}))
        self._lock = FileLock(str(self.ids_lock))
        with contextlib.suppress(OSError):  # a read-only store: readers fall back on retrying
            self.files_lock_path.touch(exist_ok=True)

    # -- ids -----------------------------------------------------------------------------
    def _bump(self, name: str, count: int) -> int:
        counter = self.counter(name)
        with self._lock:
            first = int(counter.read_text()) if counter.exists() else 1
            atomic_write(counter, str(first + count))
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
        counter = self.counter("next_run_id")
        with self._lock:
            return int(counter.read_text()) if counter.exists() else 1

    def reserve_run_ids_from(self, first_free: int) -> None:
        """Make sure later allocations start at ``first_free`` or above (used by import)."""
        counter = self.counter("next_run_id")
        with self._lock:
            current = int(counter.read_text()) if counter.exists() else 1
            if first_free > current:
                atomic_write(counter, str(first_free))

    def claim_lock(self) -> FileLock:
        """Held while a driver resuming this store picks and records its runs (a context manager)."""
        return FileLock(str(self.claim_lock_path), timeout=120)

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
        folder = self.partition(table, sweep_id)
        folder.mkdir(parents=True, exist_ok=True)
        return _write_table(data, folder / new_file_name())

    def compact(self, sweep_id: int | None = None) -> CompactResult:
        """Merge each partition's files into one (all sweeps, or one); views are unchanged.

        Compactions of a store run one at a time (a driver's own and ``mosaic compact``).
        """
        try:
            with FileLock(str(self.compact_lock_path), timeout=COMPACT_WAIT_S):
                return self._compact(sweep_id)
        except Timeout:
            raise StoreError(f"{self.path}: another compaction has held {self.compact_lock_path} for "
                             f"{COMPACT_WAIT_S:.0f} s; try again later") from None

    def _compact(self, sweep_id: int | None) -> CompactResult:
        partitions = before = after = 0
        for table in schemas.table_names():
            sweeps = [sweep_id] if sweep_id is not None else self.partitions(table)
            for sweep in sweeps:
                listed = self.files(table, sweep)
                before += len(listed)
                files = sorted(visible_files(listed), key=write_order)
                merged_before = [f for f in listed if f not in files]  # an interrupted compaction's
                if merged_before:
                    with self.files_lock(exclusive=True):
                        for old in merged_before:
                            old.unlink(missing_ok=True)
                if len(files) <= 1:
                    after += len(files)
                    continue
                schema = arrow_schema(table)
                merged = pa.concat_tables([_conform(pq.read_table(f), schema) for f in files])
                _write_table(merged, files[0].parent / compacted_name(files[-1]))
                _test_pause()
                # readers skip merged files from now on; delete them once no reader is mid-call
                with self.files_lock(exclusive=True):
                    for old in files:
                        old.unlink(missing_ok=True)
                partitions += 1
                after += 1
        return CompactResult(self.path, partitions, before, after)


def _test_pause() -> None:
    """TEST-ONLY hook: ``$MOSAIC_TEST_COMPACT_PAUSE_S`` seconds between writing a merged file and
    deleting the files it merged, so a fault test can kill a process at that moment."""
    delay = os.environ.get(_TEST_PAUSE)
    if delay:
        time.sleep(float(delay))


def store_at(store: str | os.PathLike[str] | Store | None, example: str | None = None) -> Store:
    """``store`` as a :class:`Store`; None: the last store ``mosaic run`` used
    (``example``: the command a UsageError suggests when there is none)."""
    if isinstance(store, Store):
        return store
    return Store(store if store is not None else last_store(example))


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


def _write_table(data: pa.Table, target: Path) -> Path:
    return atomic_write(target, lambda tmp: pq.write_table(data, tmp, compression="zstd"))
