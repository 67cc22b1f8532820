"""The typed read interface of a store: :class:`Reader`, and its one implementation,
:class:`SessionReader`, over a DuckDB session (:mod:`mosaic.store.session`) of either backend:

- a Mosaic store (Parquet files, DuckDB views);
- a database written by the original tool (sqlite, and its ``history_<id>.pt`` files when
  the run-files folder is given); :attr:`Reader.is_legacy` tells which.

:func:`open_reader` opens the session for a path. Callers (status, selection, legacy
export, plots, reports) use these methods; only this package writes SQL against the views.

Consistency rules (they hold for every method):

- **Latest row wins.** Rows are only appended; a run's state is its latest ``runs`` row
  (by ``time``, then ``attempt``), a param's value its latest ``params`` row, a run's
  results and history those of its latest attempt, a sweep its latest ``sweeps`` row.
- **During a write** a reader sees each appended file whole or not at all (files are
  renamed into place), so a run may show as ``running`` while its results are not yet
  visible; history and results never appear before the run's ``runs`` row (tables are
  listed in the reverse of the order the driver writes them).
- **During a compaction** a reader sees the same rows before, during and after: files a
  compaction has merged but not yet deleted are left out, and if a file vanishes between
  listing and reading, the call re-lists the files and runs again (a bounded number of
  times). Each call reads one listing of the files (one snapshot); a reader opened with
  ``live=False`` keeps its first listing, so several calls agree with each other (use
  :meth:`Reader.snapshot` to run several calls as one).
- An original database does not change while it is read; it has no sweeps.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from mosaic.errors import MosaicError, SelectionError
from mosaic.store import selection as selections
from mosaic.store.session import StoreSession, check_read_only, open_store
from mosaic.store.writer import Store

T = TypeVar("T")
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
RUN_COLUMNS = ("run_id", "status", "pipeline", "return_status", "error", "attempt", "pipeline_json", "sweep_id",
               "planned_epochs")


class Reader(abc.ABC):
    """What can be read from a store or an original database (see the module's consistency rules).

    ``ids`` arguments restrict a method to some run ids (None: every run); tables are Arrow
    tables ordered by run id. Use as a context manager, or call :meth:`close`.
    """

    path: Path

    @property
    @abc.abstractmethod
    def is_legacy(self) -> bool:
        """True for a database written by the original tool."""

    # -- runs --------------------------------------------------------------------------
    @abc.abstractmethod
    def runs(self, ids: Sequence[int] | None = None) -> pa.Table:
        """The latest ``runs`` row of each run: run_id, status, pipeline, return_status, attempt,
        pipeline_json, worker, device, error, seed, planned_epochs, sweep_id, time."""

    @abc.abstractmethod
    def latest_runs(self, ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """The latest state of each run as dicts of :data:`RUN_COLUMNS`; ``pipeline_json``
        falls back to the run's ``pipeline`` param (runs imported from the original tool)."""

    @abc.abstractmethod
    def known_run_ids(self) -> set[int]:
        """Every run id that has a ``runs`` row."""

    @abc.abstractmethod
    def used_run_ids(self) -> set[int]:
        """Every run id that has a ``runs`` or a ``params`` row (taken for an import)."""

    def run_ids(self, selection: selections.Selection | None = None) -> list[int]:
        """The run ids a selection picks (every known run when None), sorted;
        SelectionError when the selection is malformed or picks nothing."""
        if selection is None:
            return sorted(self.known_run_ids())
        return selections.resolve(self, selection)

    @abc.abstractmethod
    def request(self, sql: str) -> list[int]:
        """The run ids a user's ``-request`` query returns (one integer column); SelectionError
        when it is not one read-only statement, fails, or returns other columns."""

    # -- params --------------------------------------------------------------------------
    @abc.abstractmethod
    def param_names(self) -> list[str]:
        """Every stored param name, sorted (``status``/``traceback`` come from ``runs``)."""

    @abc.abstractmethod
    def param_values(self, name: str, limit: int | None = None) -> list[str]:
        """The distinct values of one param, sorted (at most ``limit``)."""

    @abc.abstractmethod
    def params(self, ids: Sequence[int] | None = None, names: Sequence[str] | None = None,
               keys: bool = False) -> pa.Table:
        """The ``params`` view: run_id, param_name, param_value (text), latest value of each,
        with ``status`` and ``traceback`` rows made from ``runs``. ``names`` keeps those names
        (and, with ``keys``, every ``*_key`` name too). Ordered as the original wrote them:
        by run, then first written, ``status`` and ``traceback`` last."""

    @abc.abstractmethod
    def matching_runs(self, name: str, kind: str, value: str, number: float | None) -> list[int]:
        """Run ids whose param ``name`` is equal to (``kind`` "equal"), at most (``below``) or
        at least (``above``) ``value``, thresholds inclusive as in the original; thresholds
        compare as numbers when both sides are (``number`` given), as text otherwise."""

    # -- results -------------------------------------------------------------------------
    @abc.abstractmethod
    def results(self, ids: Sequence[int] | None = None) -> pa.Table:
        """The ``run_results`` view: the original's columns (with ``"duration(s)"``), then
        slope_std_plus, slope_std_minus, attempt; one row per run (its latest attempt)."""

    @abc.abstractmethod
    def history(self, ids: Sequence[int] | None = None) -> pa.Table:
        """Per-epoch rows of each run's latest attempt: run_id, epoch, attempt, train_loss,
        test_loss, train_acc, test_acc, seconds, time, sweep_id; by run_id then epoch."""

    @abc.abstractmethod
    def sweeps(self) -> pa.Table:
        """One row per sweep (its latest): kind, config, started, ended, host, versions..."""

    @abc.abstractmethod
    def system(self) -> list[tuple[str, Any]]:
        """The original's ``system`` table: (param_name, param_value) rows."""

    def next_run_id(self) -> int:
        """The id the next run would get (the original's ``system.next_run_id``)."""
        values = dict(self.system())
        try:
            return int(values.get("next_run_id") or 1)
        except (TypeError, ValueError):
            return 1

    # -- consistency ---------------------------------------------------------------------
    @abc.abstractmethod
    def snapshot(self, action: Callable[[], T]) -> T:
        """Run ``action`` (several calls of this reader) against one listing of the files."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the reader."""

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ids_clause(ids: Sequence[int] | None, column: str = "run_id") -> str:
    return "" if ids is None else f" WHERE {column} IN ({', '.join(str(int(i)) for i in ids) or 'NULL'})"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class SessionReader(Reader):
    """A reader of either backend: the same views in a DuckDB session (see :mod:`mosaic.store.session`)."""

    def __init__(self, session: StoreSession, owned: bool = True) -> None:
        self.session = session
        self.path = session.path
        self._owned = owned

    @property
    def is_legacy(self) -> bool:
        return self.session.is_legacy

    def _table(self, query: str, parameters: list[Any] | None = None) -> pa.Table:
        return self.session.arrow(query, parameters)

    def runs(self, ids: Sequence[int] | None = None) -> pa.Table:
        return self._table(f"SELECT * FROM runs{_ids_clause(ids)} ORDER BY run_id")

    def latest_runs(self, ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        query = (
            "SELECT r.run_id, r.status, r.pipeline, r.return_status, r.error, r.attempt, "
            "coalesce(r.pipeline_json, p.param_value), r.sweep_id, r.planned_epochs FROM runs r "
            "LEFT JOIN (SELECT run_id, param_value FROM params_text WHERE param_name = 'pipeline') p USING (run_id)"
        )
        params: list[Any] = []
        if ids is not None:
            query += " WHERE list_contains(?, r.run_id)"
            params.append([int(i) for i in ids])
        rows = self.session.fetch(query + " ORDER BY r.run_id", params)
        return [dict(zip(RUN_COLUMNS, row, strict=True)) for row in rows]

    def known_run_ids(self) -> set[int]:
        return {r for (r,) in self.session.fetch("SELECT DISTINCT run_id FROM runs_all")}

    def used_run_ids(self) -> set[int]:
        return {r for (r,) in self.session.fetch("SELECT run_id FROM runs_all UNION SELECT run_id FROM params_all")}

    def request(self, sql: str) -> list[int]:
        session = self.session
        try:
            check_read_only(sql)
        except MosaicError as exc:
            raise SelectionError(f"-request: {exc}") from None
        try:
            relation = session.sql(sql)
            types = [str(t) for t in relation.types]
            if len(types) != 1 or types[0] not in _INTEGER_TYPES:
                columns = ", ".join(f"{c} {t}" for c, t in zip(relation.columns, types, strict=True))
                raise SelectionError(
                    f"-request must return one integer column of run ids; {sql!r} returns ({columns}); "
                    "e.g. SELECT run_id FROM params WHERE param_name = 'mlp_key' AND param_value = 'brick_3'"
                )
            rows = session.retry(lambda: session.con.sql(sql).fetchall())
        except duckdb.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SelectionError(f"-request {sql!r} failed: {message}") from None
        return sorted({r for (r,) in rows if r is not None})

    def param_names(self) -> list[str]:
        # the raw table has the same names as the view (superseding rows keep their name), faster
        return [n for (n,) in self.session.fetch("SELECT DISTINCT param_name FROM params_all ORDER BY 1")]

    def param_values(self, name: str, limit: int | None = None) -> list[str]:
        # numbers (range values) first, in numeric order, then text, as the original's sqlite sorts
        query = ("SELECT CAST(param_value AS VARCHAR) FROM (SELECT DISTINCT param_value FROM params "
                 "WHERE param_name = ?) ORDER BY param_value")
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        return [v for (v,) in self.session.fetch(query, [name])]

    def params(self, ids: Sequence[int] | None = None, names: Sequence[str] | None = None,
               keys: bool = False) -> pa.Table:
        where = []
        if ids is not None:
            where.append(f"p.run_id IN ({', '.join(str(int(i)) for i in ids) or 'NULL'})")
        if names is not None:
            wanted = f"p.param_name IN ({', '.join(_quote(n) for n in names) or 'NULL'})"
            if keys:
                wanted = f"({wanted} OR p.param_name LIKE '%\\_key' ESCAPE '\\')"
            where.append(wanted)
        elif keys:
            where.append("p.param_name LIKE '%\\_key' ESCAPE '\\'")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self._table(f"""
            SELECT p.run_id, p.param_name, p.param_value FROM params_text p
            LEFT JOIN (SELECT run_id, param_name, min(time) AS first FROM params_all GROUP BY ALL) f
                USING (run_id, param_name){clause}
            ORDER BY p.run_id, p.param_name = 'traceback', p.param_name = 'status', f.first, p.param_name""")

    def matching_runs(self, name: str, kind: str, value: str, number: float | None) -> list[int]:
        text = "param_value"
        arguments: list[Any]
        if kind == "equal":
            query, arguments = "SELECT run_id FROM params_text WHERE param_name = ? AND param_value = ?", [name, value]
        else:
            # inclusive, as the original (low: <= VALUE, high: >= VALUE); numbers compare as
            # numbers when both sides are numbers, otherwise as text
            op = "<=" if kind == "below" else ">="
            query = f"""
                SELECT run_id FROM params_text WHERE param_name = ? AND CASE
                    WHEN ?::DOUBLE IS NOT NULL AND TRY_CAST(trim({text}) AS DOUBLE) IS NOT NULL
                    THEN TRY_CAST(trim({text}) AS DOUBLE) {op} ?::DOUBLE
                    ELSE {text} {op} ? END"""
            arguments = [name, number, number, value]
        return sorted({r for (r,) in self.session.fetch(query, arguments)})

    def results(self, ids: Sequence[int] | None = None) -> pa.Table:
        return self._table(f"SELECT * FROM run_results{_ids_clause(ids)} ORDER BY run_id")

    def history(self, ids: Sequence[int] | None = None) -> pa.Table:
        return self._table(f"SELECT * FROM history{_ids_clause(ids)} ORDER BY run_id, epoch")

    def sweeps(self) -> pa.Table:
        return self._table("SELECT * FROM sweeps ORDER BY sweep_id")

    def system(self) -> list[tuple[str, Any]]:
        return self.session.fetch("SELECT param_name, param_value FROM system")

    def snapshot(self, action: Callable[[], T]) -> T:
        return self.session.retry(action)

    def close(self) -> None:
        if self._owned:
            self.session.close()


def open_reader(path: str | os.PathLike[str] | Store | StoreSession | Reader,
                run_files: str | os.PathLike[str] | None = None, live: bool = True) -> Reader:
    """A reader of a store folder or an original ``.db`` (``run_files``: its history files' folder).

    An open reader is returned as is; a session is wrapped (and not closed with the reader).
    ``live=False`` keeps the file listing of the opening (see the module's rules).
    """
    if isinstance(path, Reader):
        return path
    if isinstance(path, StoreSession):
        return SessionReader(path, owned=False)
    session = open_store(path.path if isinstance(path, Store) else path, run_files=run_files, live=live)
    return SessionReader(session)


def select_runs(store: str | os.PathLike[str] | Store | StoreSession | Reader, selection: selections.Selection) -> list[int]:
    """The run ids a selection picks (sorted, unique); SelectionError when malformed or empty.

    ``store``: a store folder, an original ``.db``, a Store, an open session or reader.
    """
    selections.check(selection)
    reader = open_reader(store)
    try:
        return reader.run_ids(selection)
    finally:
        if reader is not store:
            reader.close()


__all__ = ["Reader", "SessionReader", "open_reader", "select_runs"]
