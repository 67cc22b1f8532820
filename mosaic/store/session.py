"""DuckDB sessions over a store (or over a database written by the original tool), with the views.

``open_store(path)`` gives a :class:`StoreSession` whose views keep the original's table
and column names, so a user's old SQL runs unchanged:

- ``params``      run_id, param_name, param_value: the latest row per (run_id,
                  param_name), plus ``status`` and ``traceback`` rows made from ``runs``.
                  ``param_value`` is a VARIANT holding an integer for range values and
                  text for everything else, as the original's untyped sqlite column did,
                  so old SQL compares alike (``param_value > 2`` is true for every text,
                  numbers sort before text, ``= 3`` and ``= '3'`` differ); results handed
                  out (``.sql()``, ``mosaic query``, the reader) show it as text.
- ``params_text`` the same rows with ``param_value`` as plain text (what the reader uses;
                  text comparisons only, a little faster)
- ``runs``        run_id, status, pipeline, return_status, then attempt, pipeline_json,
                  worker, device, error, seed, planned_epochs (the total the attempt trains
                  to), sweep_id, time (latest row per run)
- ``run_results`` the legacy columns (with ``"duration(s)"``), then slope_std_plus,
                  slope_std_minus, attempt (the latest attempt of each run)
- ``system``      param_name, param_value (``next_run_id``)
- ``history``     one row per (run_id, epoch), latest attempt wins (rows arrive live, one
                  epoch at a time; an interrupted attempt's epochs are replaced by its resume's)
- ``sweeps``      one row per sweep, ``results`` one row per (run_id, attempt)
- ``decisions``   a search strategy's cuts: one row per (pipeline, rung) with the value
                  compared, the cutoff, kept or stopped and why (empty for a full grid)

and the raw append-only tables as ``<table>_all`` (every status change, every rekey).
Files are read by column name, so files written before a column was added read it as null.
Rows are only appended to a store; each view picks the latest row per key, so views are
right while a sweep writes and after ``compact``. Files a compaction merged but has not
deleted yet are left out (:func:`mosaic.store.layout.visible_files`), and a file that vanishes mid-query is
handled by re-listing and retrying. Timestamps are naive UTC.

An original ``.db`` is read with Python's sqlite3 into in-memory DuckDB tables of the same
shapes (DuckDB's sqlite extension would need a download), so the same views answer.

Sessions are read-only: ``StoreSession.sql`` and :func:`query` accept one read statement
(SELECT, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN of those, a few PRAGMAs) and
DuckDB itself is locked down (no file access outside the store, no extensions, no
configuration changes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from mosaic import schemas
from mosaic.errors import StoreError
from mosaic.store.layout import is_store, visible_files
from mosaic.store.legacy_db import is_sqlite, read_legacy, saved_from
from mosaic.store.status import UNFINISHED, RunStatus
from mosaic.store.writer import Store, arrow_schema

T = TypeVar("T")

# Listed in the reverse of the order a sweep writes them (runs, params, then history and
# results), so a listing never shows history or params of a run whose runs row it missed.
TABLES = ("decisions", "history", "results", "params", "runs", "sweeps")
# timestamps are shown as naive UTC (TIMESTAMPTZ values would need pytz in Python)
_DUCK_TYPES = {"int64": "BIGINT", "float64": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN", "timestamp": "TIMESTAMP"}
_READ_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.PRAGMA}
_READ_PRAGMAS = {
    "show_tables", "show_tables_expanded", "table_info", "show", "database_list", "version",
    "platform", "functions", "collations", "database_size", "storage_info", "metadata_info",
    "user_agent",
}
_RETRIES = 5

def _params_view(value: str, cast: str) -> str:
    """The latest value of each (run_id, param_name) as ``value``, plus status and traceback
    rows from runs (their text ``cast``)."""
    unfinished = ", ".join(f"'{s}'" for s in UNFINISHED)
    return f"""
        SELECT run_id, param_name, {value} AS param_value FROM (
            SELECT run_id, param_name, param_value, param_int FROM params_all
            WHERE param_name NOT IN ('status', 'traceback')
            QUALIFY row_number() OVER (PARTITION BY run_id, param_name ORDER BY time DESC) = 1)
        UNION ALL
        SELECT run_id, 'status', status{cast} FROM runs
        UNION ALL
        SELECT run_id, 'traceback', (CASE WHEN status = '{RunStatus.DONE.value}' THEN '' ELSE coalesce(error, '') END){cast}
        FROM runs WHERE status NOT IN ({unfinished})"""


# The views, over the raw tables <table>_all (which carry a sweep_id column).
_VIEWS = {
    "runs": """
        SELECT run_id, status, pipeline, return_status, attempt, pipeline_json, worker, device,
               error, seed, planned_epochs, sweep_id, time
        FROM runs_all
        QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY time DESC, attempt DESC) = 1""",
    # range values as integers, the rest as text: compares like the original's sqlite column
    "params": _params_view("CASE WHEN param_int IS NULL THEN param_value::VARIANT ELSE param_int::VARIANT END",
                           "::VARIANT"),
    # the same rows as text (what Mosaic's own reader uses: faster, and text is what it shows)
    "params_text": _params_view("param_value", ""),
    "results": """
        SELECT * FROM results_all
        QUALIFY row_number() OVER (PARTITION BY run_id, attempt ORDER BY time DESC) = 1""",
    "run_results": """
        SELECT run_id, train_loss, test_loss, train_acc, test_acc, nb_params,
               duration_s AS "duration(s)", epochs, overfit, trainability, slope,
               slope_std_plus, slope_std_minus, attempt
        FROM results_all
        QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY attempt DESC, time DESC) = 1""",
    "sweeps": """
        SELECT * FROM sweeps_all
        QUALIFY row_number() OVER (PARTITION BY sweep_id ORDER BY time DESC) = 1""",
    # a resumed sweep may decide a rung again (the same decision): one row per (pipeline, rung)
    "decisions": """
        SELECT sweep_id, dataset, model, rung, runs, metric, value, cutoff, kept, rank, pipelines, reason, time
        FROM decisions_all
        QUALIFY row_number() OVER (PARTITION BY runs, rung ORDER BY time DESC) = 1
        ORDER BY sweep_id, dataset, rung, rank""",
}


# History rows come live, one epoch at a time, and again (the epochs not sent live) when the
# attempt ends. Latest wins per (run_id, epoch): the row of the latest attempt, then of the latest
# sweep (``mosaic resume`` may keep an attempt), then the latest written. Epochs of an older
# attempt beyond the newest attempt's last epoch are dropped: they were trained by an attempt
# that a resume from an earlier checkpoint replaces. Without any rerun and with one sweep's
# history only (file statistics and the partition list tell) no epoch is written twice, so the
# view is every row.
_HISTORY_COLUMNS = "run_id, epoch, attempt, train_loss, test_loss, train_acc, test_acc, seconds, time, sweep_id"
_HISTORY = {
    False: f"SELECT {_HISTORY_COLUMNS} FROM history_all",
    True: f"""
        SELECT {_HISTORY_COLUMNS} FROM (
            SELECT *, max(epoch) FILTER (WHERE generation = newest) OVER (PARTITION BY run_id) AS newest_epoch
            FROM (
                SELECT *, max(generation) OVER (PARTITION BY run_id) AS newest
                FROM (SELECT *, coalesce(attempt, 0) * 1000000000 + coalesce(sweep_id, 0) AS generation FROM history_all)))
        WHERE epoch <= newest_epoch
        QUALIFY row_number() OVER (PARTITION BY run_id, epoch ORDER BY generation DESC, time DESC) = 1""",
}


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _empty_select(table: str) -> str:
    columns = [f"CAST(NULL AS {_DUCK_TYPES[kind]}) AS {name}" for name, kind in schemas.table_columns(table)]
    if table != "sweeps":
        columns.append("CAST(NULL AS BIGINT) AS sweep_id")
    return f"SELECT {', '.join(columns)} WHERE false"


class StoreSession:
    """A DuckDB connection with the store's views; use ``.sql(query)``, then ``.close()``.

    ``live`` sessions see rows appended after they opened; a snapshot session
    (``live=False``) reads the files present when it opened, so several queries agree.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, store: Store | None, live: bool,
                 temp_dir: Path) -> None:
        self.con = con
        self.path = path
        self.store = store
        self.live = live
        self._temp_dir = temp_dir
        self._sources: dict[str, str | None] = {}
        self._next_run_id: int | None = None
        self._reruns: bool | None = None
        self._max_attempt: dict[Path, int] = {}
        self._has_param_int: dict[Path, bool] = {}
        self._depth = 0
        self._provided: dict[str, Callable[[], Any]] = {}
        self._made: set[str] = set()

    @property
    def is_legacy(self) -> bool:
        """True when this session reads a database written by the original tool."""
        return self.store is None

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run one read-only statement; returns a DuckDB relation (``.df()``, ``.arrow()``, ``.pl()``).

        Raises StoreError for a statement that is not a single read.
        """
        check_read_only(query)
        # read here, under the files lock and the retry: a relation read later could find a file
        # that a compaction deleted meanwhile
        table = self.retry(lambda: plain(self.relation(query)).to_arrow_table())
        return self.con.from_arrow(table)

    def provide(self, name: str, compute: Callable[[], Any]) -> None:
        """Offer a relation ``name`` made by ``compute()`` (an Arrow table or a DataFrame) the
        first time a statement names it, and kept for the session's life: what the store does
        not hold (the verdict) costs nothing to queries that do not ask for it."""
        self._provided[name.lower()] = compute

    def relation(self, query: str) -> duckdb.DuckDBPyRelation:
        """``query`` as a DuckDB relation, once the provided relations it names are made.
        The caller checks the statement (:func:`check_read_only`)."""
        named = _identifiers(query) & (self._provided.keys() - self._made)
        for name in sorted(named):
            self.con.register(name, self._provided[name]())
            self._made.add(name)
        return self.con.sql(query)

    def fetch(self, query: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a trusted statement of Mosaic's own (with ``?`` parameters) and fetch every row.

        Retried if compaction removed a file while it was read.
        """
        return self.retry(lambda: self.con.execute(query, parameters or []).fetchall())

    def arrow(self, query: str, parameters: list[Any] | None = None) -> pa.Table:
        """Like :meth:`fetch`, as an Arrow table."""
        if not parameters:
            return self.retry(lambda: self.con.sql(query).to_arrow_table())
        return self.retry(lambda: self.con.execute(query, parameters).to_arrow_table())

    def retry(self, action: Callable[[], T]) -> T:
        """Run ``action`` against one listing of the store's files (calls nested in it share that
        listing), re-listing and running again if a file vanished under it (compaction)."""
        if self._depth:  # inside another call: it holds one listing and retries as a whole
            return action()
        for attempt in range(_RETRIES):
            try:
                with self._files_lock():
                    if self.live or attempt:
                        self.refresh(force=attempt > 0)
                    self._depth += 1
                    try:
                        return action()
                    finally:
                        self._depth -= 1
            except duckdb.IOException:
                if self.store is None or attempt == _RETRIES - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")

    def _files_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held while files are listed and read: compaction deletes nothing meanwhile."""
        return self.store.files_lock(exclusive=False) if self.store is not None else contextlib.nullcontext()

    def refresh(self, force: bool = False) -> None:
        """Point the views at the store's current files (no-op for an original database)."""
        if self.store is None:
            return
        for table in TABLES:
            files = visible_files(self.store.files(table))
            source = "[" + ", ".join(_sql_string(str(f)) for f in files) + "]" if files else None
            if force or source != self._sources.get(table, "unset"):
                self._sources.pop(table, None)  # until the view is made: a failure retries it
                untyped = table == "params" and not all(self._typed(f) for f in files)
                self.con.execute(f"CREATE OR REPLACE VIEW {table}_all AS {_raw_select(table, source, untyped)}")
                if table == "history":
                    several = len({f.parent for f in files}) > 1
                    self._history_view(several or any(self._attempts(f) > 0 for f in files), force)
                self._sources[table] = source
        next_run_id = self.store.next_run_id()
        if next_run_id != self._next_run_id:
            self._next_run_id = next_run_id
            self.con.execute(
                "CREATE OR REPLACE VIEW system AS SELECT 'next_run_id' AS param_name, "
                f"CAST({next_run_id} AS BIGINT) AS param_value"
            )

    def _history_view(self, reruns: bool, force: bool = False) -> None:
        if force or reruns != self._reruns:
            self._reruns = None
            self.con.execute(f"CREATE OR REPLACE VIEW history AS {_HISTORY[reruns]}")
            self._reruns = reruns

    def _typed(self, file: Path) -> bool:
        """True when a params file has the ``param_int`` column (files never change)."""
        if file not in self._has_param_int:
            try:
                self._has_param_int[file] = "param_int" in pq.read_schema(file).names
            except (OSError, ValueError):
                return False  # unreadable now (being compacted away): read it the tolerant way
        return self._has_param_int[file]

    def _attempts(self, file: Path) -> int:
        """The largest attempt in a history file, from its statistics (files never change)."""
        if file not in self._max_attempt:
            try:
                meta = pq.read_metadata(file)
                column = meta.schema.names.index("attempt")
                stats = [meta.row_group(i).column(column).statistics for i in range(meta.num_row_groups)]
                self._max_attempt[file] = max((st.max if st is not None and st.has_min_max else 1) for st in stats) if stats else 0
            except (OSError, ValueError):
                self._max_attempt[file] = 1  # unreadable now (being compacted away): assume reruns
        return self._max_attempt[file]

    def close(self) -> None:
        """Close the connection and remove DuckDB's spill folder."""
        self.con.close()
        shutil.rmtree(self._temp_dir, ignore_errors=True)

    def __enter__(self) -> StoreSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plain(relation: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """``relation`` with its VARIANT columns (``params.param_value``) cast to text, so results
    read as they always did (Arrow, pandas, csv, json, Parquet); comparisons stay typed."""
    types = [str(t) for t in relation.types]
    if "VARIANT" not in types:
        return relation
    names = ['"' + c.replace('"', '""') + '"' for c in relation.columns]
    if len(set(names)) != len(names):  # duplicate names cannot be projected by name
        return relation
    columns = [f"CAST({n} AS VARCHAR) AS {n}" if t == "VARIANT" else n for n, t in zip(names, types, strict=True)]
    return relation.project(", ".join(columns))


def _raw_select(table: str, source: str | None, untyped: bool = False) -> str:
    """``source``: a list literal of quoted file paths (None: no file yet); ``untyped``: some
    params files lack the ``param_int`` column (written by an older Mosaic)."""
    if source is None:
        return _empty_select(table)
    if table == "sweeps":  # carries sweep_id itself
        return f"SELECT {_utc(table)} FROM read_parquet({source}, hive_partitioning = false, union_by_name = true)"
    if table == "params" and untyped:  # some files were written before param_int existed: null there
        return (f"SELECT {_utc(table, 'EXCLUDE (sweep)')}, sweep AS sweep_id FROM ("
                f"SELECT * FROM read_parquet({source}, hive_partitioning = true, union_by_name = true) "
                "UNION ALL BY NAME SELECT CAST(NULL AS BIGINT) AS param_int WHERE false)")
    return f"SELECT {_utc(table, 'EXCLUDE (sweep)')}, sweep AS sweep_id FROM read_parquet({source}, hive_partitioning = true, union_by_name = true)"


def _utc(table: str, extra: str = "") -> str:
    stamps = [name for name, kind in schemas.table_columns(table) if kind == "timestamp"]
    replace = ", ".join(f"CAST({n} AS TIMESTAMP) AS {n}" for n in stamps)
    return f"* {extra} REPLACE ({replace})" if stamps else f"* {extra}"


def _with_store_histories(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """A database Mosaic saved (``savedb``/``export``) takes the histories that no
    ``history_<id>.pt`` holds from the store it was saved from, when that store is still there:
    runs write those files only with ``[MONITOR] legacy_history = True``."""
    origin = saved_from(tables)
    if origin is None:
        return tables
    have = tables["history"].column("run_id").to_pylist() if "history" in tables else []
    wanted = sorted(set(tables["runs"].column("run_id").to_pylist()) - set(have))
    if not wanted:
        return tables
    schema = arrow_schema("history")
    with open_store(origin, live=False) as store:
        found = store.con.sql(
            f"SELECT {', '.join(schema.names)} FROM history WHERE run_id IN ({', '.join(map(str, wanted))}) ORDER BY run_id, epoch"
        ).to_arrow_table().cast(schema)
    history = found if "history" not in tables else pa.concat_tables([tables["history"], found])
    return {**tables, "history": history}


def open_store(path: str | os.PathLike[str], run_files: str | os.PathLike[str] | None = None,
               live: bool = True) -> StoreSession:
    """Open a store folder (or an original tool's ``.db``) for SQL; returns a :class:`StoreSession`.

    ``run_files``: for an original database, the folder of its ``history_<id>.pt`` files,
    read into the ``history`` view (a database Mosaic saved also reads its store's). ``live=False`` freezes the file list at opening.
    """
    path = Path(path)
    store: Store | None = None
    legacy_tables: dict[str, pa.Table] | None = None
    if is_store(path):
        store = Store(path)
    elif path.is_file() and is_sqlite(path):
        legacy_tables = _with_store_histories(read_legacy(path, history_dir=run_files))
    elif path.is_file():
        raise StoreError(f"{path}: neither a Mosaic store (a folder) nor a database of the original tool (sqlite)")
    else:
        Store(path)  # raises the store's own "no store here" message
    temp_dir = Path(tempfile.gettempdir()) / f"mosaic-duckdb-{uuid.uuid4().hex[:12]}"
    con = duckdb.connect(":memory:")
    session = StoreSession(con, path.resolve(), store, live, temp_dir)
    try:
        con.execute(f"SET temp_directory = {_sql_string(str(temp_dir))}")
        con.execute("SET TimeZone = 'UTC'")
        if legacy_tables is not None:
            _load_legacy(con, legacy_tables)
            session._history_view(False)
            _create_views(con)
        else:
            for attempt in range(_RETRIES):  # creating a view reads file footers: retry past compaction
                try:
                    with session._files_lock():
                        session.refresh(force=True)
                        _create_views(con)
                    break
                except duckdb.IOException:
                    if attempt == _RETRIES - 1:
                        raise
                    time.sleep(0.02 * (attempt + 1))
        allowed = [str(store.path.resolve()) + os.sep] if store is not None else []
        con.execute(f"SET allowed_directories = [{', '.join(_sql_string(a) for a in allowed)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        session.close()
        raise
    return session


def _create_views(con: duckdb.DuckDBPyConnection) -> None:
    for name, body in _VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")


def _load_legacy(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
    for table in (*TABLES, "system"):
        if table not in tables:
            con.execute(f"CREATE TABLE {table}_all AS {_empty_select(table)}")
            continue
        con.register("_legacy_arrow", tables[table])
        name, extra = (f"{table}_all", ", CAST(NULL AS BIGINT) AS sweep_id") if table in TABLES else (table, "")
        if table == "sweeps":
            extra = ""
        columns = _utc(table) if table in TABLES else "*"
        con.execute(f"CREATE TABLE {name} AS SELECT {columns}{extra} FROM _legacy_arrow")
        con.unregister("_legacy_arrow")


def check_read_only(query: str) -> None:
    """Raise StoreError unless ``query`` is one read-only statement."""
    refusal = "mosaic query is read-only: give one SELECT (or WITH, VALUES, DESCRIBE, SHOW, EXPLAIN)"
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise StoreError(f"SQL does not parse: {first_line(exc)}") from None
    if len(statements) != 1:
        raise StoreError(f"{refusal}; got {len(statements)} statements")
    kind = statements[0].type
    if kind not in _READ_TYPES:
        raise StoreError(f"{refusal}; refused: {kind.name} statement (nothing was run)")
    tokens = [(pos, tok) for pos, tok in duckdb.tokenize(query) if tok != duckdb.token_type.comment]
    if kind == duckdb.StatementType.PRAGMA:
        name = query[tokens[1][0]:].split("(", 1)[0].split("=", 1)[0].strip().lower() if len(tokens) > 1 else ""
        if name not in _READ_PRAGMAS:
            raise StoreError(f"{refusal}; PRAGMA {name} is not a read (allowed: show_tables, table_info, ...)")
    elif kind == duckdb.StatementType.EXPLAIN:
        check_read_only(query[_explained_start(query, tokens):])


def _explained_start(query: str, tokens: list[tuple[int, Any]]) -> int:
    index = 1  # tokens[0] is EXPLAIN
    if index < len(tokens) and query[tokens[index][0]:].upper().startswith("ANALYZE"):
        index += 1
    if index < len(tokens) and query[tokens[index][0]] == "(":
        depth = 0
        while index < len(tokens):
            char = query[tokens[index][0]]
            depth += char == "("
            depth -= char == ")"
            index += 1
            if depth == 0:
                break
    if index >= len(tokens):
        raise StoreError("EXPLAIN of what? give EXPLAIN SELECT ...")
    return tokens[index][0]


def _identifiers(query: str) -> set[str]:
    """The lower-cased identifiers a statement names (not inside strings or comments)."""
    try:
        tokens = duckdb.tokenize(query)
    except duckdb.Error:
        return set()
    ends = [pos for pos, _ in tokens[1:]] + [len(query)]
    return {query[pos:end].strip().strip('"').lower()
            for (pos, kind), end in zip(tokens, ends, strict=True) if kind == duckdb.token_type.identifier}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


