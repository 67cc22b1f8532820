"""Query-shaped output: an Arrow table as aligned text, CSV or JSON, and writing it to a file.

Shared by ``mosaic query`` (:mod:`mosaic.analysis.sql`) and ``mosaic verdict``
(:mod:`mosaic.analysis.compare`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from mosaic.errors import StoreError
from mosaic.store.files import atomic_write
from mosaic.text import format_cell

_TABLE_ROW_LIMIT = 10_000
_CELL_WIDTH = 80


def check_target(target: Path, store: Path | None = None) -> None:
    """Refuse an output file inside ``store`` or in a folder that does not exist (before any work)."""
    if store is not None and _inside(target, store):
        raise StoreError(f"-o {target}: inside the store {store}; write the output elsewhere")
    if not target.parent.exists():
        raise StoreError(f"-o {target}: folder {target.parent} does not exist; create it first")


def write_output(target: Path, content: Any) -> None:
    """Write ``content`` (text, or a callable writing a temporary path) atomically to ``target``."""
    check_target(target)
    atomic_write(target, content)


def _inside(target: Path, folder: Path) -> bool:
    try:
        target.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


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
