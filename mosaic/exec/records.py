"""The rows one sweep writes to the store: its sweep row, planned runs, and buffered updates.

Planned runs (``pending`` runs rows and their params) are written in large columnar files
before the first task starts. Later rows (running, done, results, history...) wait in a
buffer flushed about once a second or every ``FLUSH_ROWS`` rows, so a 10,000-run sweep
leaves hundreds of files, not tens of thousands; ``finish`` compacts the partition to one
file per table. Every row carries its own ``time`` (strictly increasing in this process),
so a later status always supersedes an earlier one, even within one flush.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import socket
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import mosaic
from mosaic import sweep as sweeps
from mosaic.config import Config
from mosaic.exec.task import run_seed
from mosaic.store import CompactResult, Store, now

#: Buffered rows are flushed when this many seconds passed or this many rows wait.
FLUSH_SECONDS = 1.0
FLUSH_ROWS = 50_000
#: Pending rows and params are written in files of at most this many runs.
CHUNK_RUNS = 20_000


@dataclass
class PlannedRun:
    """One run a sweep will execute."""

    run_id: int
    attempt: int
    pipeline: list[dict[str, Any]]
    epochs: int
    resume: bool = False


class SweepRecords:
    """Writes one sweep's partition of the store."""

    def __init__(self, store: Store, sweep_id: int, kind: str, config: Config, started: dt.datetime) -> None:
        self.store = store
        self.sweep_id = sweep_id
        self.kind = kind
        self.config = config
        self.started = started
        self.buffer: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.buffered = 0
        self.last_flush = time.monotonic()

    def run_row(self, planned: PlannedRun, status: str, stamp: dt.datetime, **extra: Any) -> dict[str, Any]:
        """A runs row for ``planned`` (``extra`` sets worker, device, error, seed...)."""
        return {
            "run_id": planned.run_id,
            "attempt": planned.attempt,
            "status": status,
            "pipeline": sweeps.format_pipeline(planned.pipeline),
            "pipeline_json": json.dumps(planned.pipeline),
            "seed": run_seed(self.config.process.seed, planned.run_id),
            "time": stamp,
            **extra,
        }

    def write_sweep_row(self, ended: bool) -> None:
        """The sweeps row: config, host, versions; written again with ``ended`` at the end."""
        row = {
            "sweep_id": self.sweep_id,
            "kind": self.kind,
            "config_path": str(self.config.path),
            "config": self.config.text,
            "started": self.started,
            "ended": now() if ended else None,
            "host": socket.gethostname(),
            "mosaic_version": mosaic.__version__,
            "torch_version": _version("torch"),
            "dask_version": _version("dask"),
            "python_version": sys.version.split()[0],
            "store_path": str(self.store.path),
            "time": now(),
        }
        self.store.append("sweeps", [row], self.sweep_id)

    def write_planned(self, runs: list[PlannedRun], new_params: bool) -> None:
        """Every planned run as ``pending``, and (new runs) its params in the legacy naming."""
        raw_process = [(k, str(v)) for k, v in self.config.process.raw.items()]
        database = ("database_path", str(self.store.path))
        for start in range(0, len(runs), CHUNK_RUNS):
            chunk = runs[start:start + CHUNK_RUNS]
            stamp = now()
            rows: dict[str, list[Any]] = collections.defaultdict(list)
            for planned in chunk:
                rows["run_id"].append(planned.run_id)
                rows["attempt"].append(planned.attempt)
                rows["pipeline"].append(sweeps.format_pipeline(planned.pipeline))
                rows["pipeline_json"].append(json.dumps(planned.pipeline))
                rows["seed"].append(run_seed(self.config.process.seed, planned.run_id))
            rows["status"] = ["pending"] * len(chunk)
            rows["time"] = [stamp] * len(chunk)
            self._append_columns("runs", rows)
            if not new_params:
                continue
            params: dict[str, list[Any]] = collections.defaultdict(list)
            for planned, pipeline_json in zip(chunk, rows["pipeline_json"], strict=True):
                pairs = [(n, str(v)) for n, v in sweeps.legacy_params(planned.pipeline)]
                pairs += [("pipeline", pipeline_json), *raw_process, database]
                params["run_id"].extend([planned.run_id] * len(pairs))
                params["param_name"].extend(n for n, _ in pairs)
                params["param_value"].extend(v for _, v in pairs)
            params["time"] = [stamp] * len(params["run_id"])
            self._append_columns("params", params)

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Buffer one row."""
        self.buffer[table].append(row)
        self.buffered += 1

    def maybe_flush(self) -> None:
        """Flush when the buffer is old or big enough."""
        if self.buffered >= FLUSH_ROWS or (self.buffered and time.monotonic() - self.last_flush >= FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Append every buffered row, one file per table."""
        for table, rows in self.buffer.items():
            if rows:
                self.store.append(table, rows, self.sweep_id)
        self.buffer.clear()
        self.buffered = 0
        self.last_flush = time.monotonic()

    def finish(self) -> CompactResult:
        """Flush, mark the sweep ended, and compact its partition."""
        self.flush()
        self.write_sweep_row(ended=True)
        return self.store.compact(self.sweep_id)

    def _append_columns(self, table: str, columns: dict[str, list[Any]]) -> None:
        import pyarrow as pa

        self.store.append(table, pa.table(dict(columns)), self.sweep_id)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
