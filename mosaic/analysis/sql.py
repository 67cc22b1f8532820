"""``mosaic query``: read-only SQL over a store (or an original ``.db``), and its output formats.

The sessions and their views live in :mod:`mosaic.store.session` (see there for the views
and the read-only rules); this module runs one user query and renders the result as an
aligned table, CSV, JSON or a Parquet file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from mosaic.errors import StoreError
from mosaic.store.files import atomic_write
from mosaic.store.layout import SUFFIX
from mosaic.store.session import check_read_only, first_line, open_store, plain
from mosaic.text import format_cell

FORMATS = ("table", "csv", "json", "parquet")
_TABLE_ROW_LIMIT = 10_000
_CELL_WIDTH = 80


def query(store: str | os.PathLike[str], sql: str, format: str = "table",
          output: str | os.PathLike[str] | None = None) -> str:
    """Run read-only SQL over a store (or an original ``.db``); returns the text to print.

    ``format``: ``table`` (aligned text), ``csv``, ``json`` (an array of objects) or
    ``parquet`` (needs ``output``). With ``output`` the result goes to that file and a
    one-line summary is returned. Refused or failing SQL raises StoreError.
    """
    if format not in FORMATS:
        raise StoreError(f"--format {format}: unknown; use one of {', '.join(FORMATS)}")
    if format == "parquet" and output is None:
        raise StoreError(f"--format parquet writes a file: add -o FILE{SUFFIX}")
    check_read_only(sql)
    target = Path(output) if output is not None else None
    with open_store(store) as session:
        if target is not None and session.store is not None and _inside(target, session.store.path):
            raise StoreError(f"-o {target}: inside the store {session.store.path}; write the output elsewhere")
        try:
            data = session.retry(lambda: plain(session.con.sql(sql)).to_arrow_table())
        except duckdb.PermissionException as exc:
            raise StoreError(f"refused: the query reads or writes files outside the store ({first_line(exc)})") from None
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {first_line(exc)}") from None
    if format == "parquet":
        assert target is not None
        _atomic_write(target, lambda tmp: pq.write_table(data, tmp))
        return f"{data.num_rows} rows written to {target}"
    text = {"table": render_table, "csv": render_csv, "json": render_json}[format](data)
    if target is None:
        return text
    _atomic_write(target, text)
    return f"{data.num_rows} rows written to {target}"


def _inside(target: Path, folder: Path) -> bool:
    try:
        target.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _atomic_write(target: Path, content: Any) -> None:
    if not target.parent.exists():
        raise StoreError(f"-o {target}: folder {target.parent} does not exist; create it first")
    atomic_write(target, content)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def render_json(data: pa.Table) -> str:
    """An Arrow table as a JSON array of objects, one per line."""
    names = data.column_names
    lines = [
        json.dumps({n: _plain(v) for n, v in zip(names, row, strict=True)}, default=str)
        for row in zip(*(c.to_pylist() for c in data.columns), strict=True)
    ] if data.num_rows else []
    return "[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n"


def render_csv(data: pa.Table) -> str:
    """An Arrow table as CSV with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(data.column_names)
    for row in zip(*(c.to_pylist() for c in data.columns), strict=True):
        writer.writerow(["" if v is None else _plain(v) for v in row])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    text = format_cell(value, digits=6, null="NULL") if value is None or isinstance(value, float) else str(_plain(value))
    text = text.replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + "…"


def render_table(data: pa.Table) -> str:
    """An Arrow table as aligned text (long cells shortened; csv/json give every character)."""
    shown = data.slice(0, _TABLE_ROW_LIMIT)
    names = data.column_names
    rows = [[_cell(v) for v in row] for row in zip(*(c.to_pylist() for c in shown.columns), strict=True)]
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type) for f in data.schema]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)).rstrip()

    out = [line(names), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    footer = f"({data.num_rows} row{'s' if data.num_rows != 1 else ''})"
    if data.num_rows > len(rows):
        footer = f"({len(rows)} of {data.num_rows} rows shown; use --format csv or -o FILE for all)"
    out.append(footer)
    return "\n".join(out) + "\n"
