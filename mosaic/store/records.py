"""The rows a sweep writes to the store: row builders, and one sweep's buffered writer.

The builders (``sweep_row``, ``run_row``, ``param_pairs``, ``history_rows``, ``result_row``)
are the only code that shapes a row; the driver and the test helpers both use them.

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
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

import mosaic
from mosaic import sweep as sweeps
from mosaic.config import Config
from mosaic.store.status import RunStatus
from mosaic.store.writer import CompactResult, Store, now

#: Buffered rows are flushed when this many seconds passed or this many rows wait.
FLUSH_SECONDS = 1.0
FLUSH_ROWS = 50_000
#: Pending rows and params are written in files of at most this many runs.
CHUNK_RUNS = 20_000


# -- row builders ------------------------------------------------------------------------------
def sweep_row(sweep_id: int, kind: str, *, config_path: str | Path, config_text: str | None, started: dt.datetime,
              ended: bool, store_path: str | Path, host: str | None = None) -> dict[str, Any]:
    """The sweeps row: config, host, versions; written again with ``ended`` at the end."""
    return {
        "sweep_id": sweep_id,
        "kind": kind,
        "config_path": str(config_path),
        "config": config_text,
        "started": started,
        "ended": now() if ended else None,
        "host": host or socket.gethostname(),
        "mosaic_version": mosaic.__version__,
        "torch_version": _version("torch"),
        "dask_version": _version("dask"),
        "python_version": sys.version.split()[0],
        "store_path": str(store_path),
        "time": now(),
    }


def run_row(run_id: int, attempt: int, pipeline: list[dict[str, Any]], status: RunStatus | str, seed: int | None,
            stamp: dt.datetime, **extra: Any) -> dict[str, Any]:
    """A runs row (``extra`` sets return_status, worker, device, error...)."""
    return {
        "run_id": run_id,
        "attempt": attempt,
        "status": RunStatus(status).value,
        "pipeline": sweeps.format_pipeline(pipeline),
        "pipeline_json": json.dumps(pipeline),
        "seed": seed,
        "time": stamp,
        **extra,
    }


def param_pairs(pipeline: list[dict[str, Any]], process_raw: Mapping[str, Any], store_path: str | Path,
                pipeline_json: str | None = None) -> list[tuple[str, str]]:
    """A new run's params in the legacy naming: pipeline values, ``pipeline``, PROCESS, ``database_path``."""
    pairs = [(n, str(v)) for n, v in sweeps.legacy_params(pipeline)]
    pairs += [("pipeline", pipeline_json if pipeline_json is not None else json.dumps(pipeline))]
    pairs += [(k, str(v)) for k, v in process_raw.items()]
    pairs.append(("database_path", str(store_path)))
    return pairs


_INTEGER = re.compile(r"-?\d+")


@lru_cache(maxsize=4096)
def integer_names(pipeline_json: str | None) -> frozenset[str]:
    """The param names whose value a pipeline holds as a JSON integer (range values).

    The original stored exactly these as sqlite INTEGER and everything else as TEXT: the
    store's ``params.param_int`` column and the sqlite export both follow this one rule.
    """
    if not pipeline_json:
        return frozenset()
    try:
        pairs = sweeps.legacy_params(json.loads(pipeline_json))
    except (ValueError, TypeError, KeyError, AttributeError):
        return frozenset()
    return frozenset(name for name, value in pairs if isinstance(value, int) and not isinstance(value, bool))


def typed_value(value: str | None, integer: bool) -> int | str | None:
    """A param's stored text as the original stored it: an int for an integer param, else the text."""
    if integer and value is not None and _INTEGER.fullmatch(value):
        return int(value)
    return value


def history_rows(run_id: int, attempt: int, epochs: Iterable[Mapping[str, Any]], stamp: dt.datetime) -> list[dict[str, Any]]:
    """History rows of one attempt (every epoch at once: a rerun rewrites them all)."""
    return [{**epoch, "run_id": run_id, "attempt": attempt, "time": stamp} for epoch in epochs]


def result_row(run_id: int, attempt: int, results: Mapping[str, Any], stamp: dt.datetime) -> dict[str, Any]:
    """The results row of one attempt."""
    return {**results, "run_id": run_id, "attempt": attempt, "time": stamp}


# -- one sweep ---------------------------------------------------------------------------------
@dataclass
class PlannedRun:
    """One run a sweep will execute."""

    run_id: int
    attempt: int
    pipeline: list[dict[str, Any]]
    epochs: int
    resume: bool = False
    #: the epochs the run's history holds when this attempt ends (its planned total; None
    #: when unknown, e.g. a rerun of a run with no results); recorded as ``planned_epochs``
    total: int | None = None


class SweepRecords:
    """Writes one sweep's partition of the store."""

    def __init__(self, store: Store, sweep_id: int, kind: str, config: Config, started: dt.datetime,
                 seed: Callable[[int], int]) -> None:
        """``seed``: a run's seed from its run id."""
        self.store = store
        self.seed = seed
        self.sweep_id = sweep_id
        self.kind = kind
        self.config = config
        self.started = started
        self.buffer: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.buffered = 0
        self.last_flush = time.monotonic()

    def run_row(self, planned: PlannedRun, status: RunStatus, stamp: dt.datetime, **extra: Any) -> dict[str, Any]:
        """A runs row for ``planned`` (``extra`` sets worker, device, error, seed...)."""
        seed = extra.pop("seed") if "seed" in extra else self.seed(planned.run_id)
        extra.setdefault("planned_epochs", planned.total)
        return run_row(planned.run_id, planned.attempt, planned.pipeline, status, seed, stamp, **extra)

    def write_sweep_row(self, ended: bool) -> None:
        """The sweeps row: config, host, versions; written again with ``ended`` at the end."""
        row = sweep_row(self.sweep_id, self.kind, config_path=self.config.path, config_text=self.config.text,
                        started=self.started, ended=ended, store_path=self.store.path)
        self.store.append("sweeps", [row], self.sweep_id)

    def write_planned(self, runs: Sequence[PlannedRun], new_params: bool) -> None:
        """Every planned run as ``pending``, and (new runs) its params in the legacy naming."""
        write_planned(self.store, self.sweep_id, runs, self.seed, self.config.process.raw if new_params else None)

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Buffer one row."""
        self.buffer[table].append(row)
        self.buffered += 1

    def add_outcome(self, planned: PlannedRun, history: Iterable[Mapping[str, Any]] | None,
                    results: Mapping[str, Any] | None, stamp: dt.datetime) -> None:
        """Buffer the history and results rows of a finished attempt."""
        for row in history_rows(planned.run_id, planned.attempt, history or (), stamp):
            self.add("history", row)
        if results:
            self.add("results", result_row(planned.run_id, planned.attempt, results, stamp))

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


def write_planned(store: Store, sweep_id: int, runs: Sequence[PlannedRun], seed: Callable[[int], int | None],
                  process_raw: Mapping[str, Any] | None) -> None:
    """Every planned run as ``pending``, and (``process_raw`` given: new runs) its params."""
    for start in range(0, len(runs), CHUNK_RUNS):
        chunk = runs[start:start + CHUNK_RUNS]
        stamp = now()
        rows: dict[str, list[Any]] = collections.defaultdict(list)
        for planned in chunk:
            rows["run_id"].append(planned.run_id)
            rows["attempt"].append(planned.attempt)
            rows["pipeline"].append(sweeps.format_pipeline(planned.pipeline))
            rows["pipeline_json"].append(json.dumps(planned.pipeline))
            rows["seed"].append(seed(planned.run_id))
            rows["planned_epochs"].append(planned.total)
        rows["status"] = [RunStatus.PENDING.value] * len(chunk)
        rows["time"] = [stamp] * len(chunk)
        store.append("runs", pa.table(dict(rows)), sweep_id)
        if process_raw is None:
            continue
        params: dict[str, list[Any]] = collections.defaultdict(list)
        for planned, pipeline_json in zip(chunk, rows["pipeline_json"], strict=True):
            pairs = param_pairs(planned.pipeline, process_raw, store.path, pipeline_json)
            integers = integer_names(pipeline_json)
            params["run_id"].extend([planned.run_id] * len(pairs))
            params["param_name"].extend(n for n, _ in pairs)
            params["param_value"].extend(v for _, v in pairs)
            params["param_int"].extend(_int_or_none(typed_value(v, n in integers)) for n, v in pairs)
        params["time"] = [stamp] * len(params["run_id"])
        store.append("params", pa.table(dict(params)), sweep_id)


def _int_or_none(value: int | str | None) -> int | None:
    return value if isinstance(value, int) else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
