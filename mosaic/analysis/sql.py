"""``mosaic query``: read-only SQL over a store (or an original ``.db``), and its output formats.

The sessions and their views live in :mod:`mosaic.store.session` (see there for the views
and the read-only rules); this module runs one user query and renders the result as an
aligned table, CSV, JSON or a Parquet file.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from mosaic.analysis.output import check_target, render_csv, render_json, render_table, write_output
from mosaic.errors import StoreError
from mosaic.store.layout import SUFFIX
from mosaic.store.session import StoreSession, check_read_only, first_line, open_store, plain

FORMATS = ("table", "csv", "json", "parquet")
#: relations computed by Python when a query names them (and only then)
LAZY_RELATIONS = ("verdict", "verdict_across")


def query(store: str | os.PathLike[str], sql: str, format: str = "table",
          output: str | os.PathLike[str] | None = None) -> str:
    """Run read-only SQL over a store (or an original ``.db``); returns the text to print.

    ``format``: ``table`` (aligned text), ``csv``, ``json`` (an array of objects) or
    ``parquet`` (needs ``output``). With ``output`` the result goes to that file and a
    one-line summary is returned. Refused or failing SQL raises StoreError. Besides the
    store's views, ``verdict`` and ``verdict_across`` (:func:`mosaic.analysis.compare.verdict`
    with its defaults) are there, computed only when the SQL names them.
    """
    if format not in FORMATS:
        raise StoreError(f"--format {format}: unknown; use one of {', '.join(FORMATS)}")
    if format == "parquet" and output is None:
        raise StoreError(f"--format parquet writes a file: add -o FILE{SUFFIX}")
    check_read_only(sql)
    target = Path(output) if output is not None else None
    with open_store(store) as session:
        if target is not None:
            check_target(target, session.store.path if session.store is not None else None)
        _provide_verdict(session)
        try:
            data = session.retry(lambda: plain(session.relation(sql)).to_arrow_table())
        except duckdb.PermissionException as exc:
            raise StoreError(f"refused: the query reads or writes files outside the store ({first_line(exc)})") from None
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {first_line(exc)}") from None
    if format == "parquet":
        assert target is not None
        write_output(target, lambda tmp: pq.write_table(data, tmp))
        return f"{data.num_rows} rows written to {target}"
    text = {"table": render_table, "csv": render_csv, "json": render_json}[format](data)
    if target is None:
        return text
    write_output(target, text)
    return f"{data.num_rows} rows written to {target}"


def _provide_verdict(session: StoreSession) -> None:
    """Offer ``verdict`` and ``verdict_across`` to the session, computed the first time a query names one."""

    made: dict[str, Any] = {}

    def compute(name: str) -> object:
        from mosaic.analysis.compare import verdict  # scipy loads only for a query that needs it

        if "result" not in made:  # both relations come from one verdict
            made["result"] = verdict(session)
        result = made["result"]
        return result.arrow() if name == "verdict" else result.across_arrow()

    for name in LAZY_RELATIONS:
        session.provide(name, functools.partial(compute, name))
