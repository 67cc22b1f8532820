"""Run selection, shared by ``rerun`` and ``plotloss`` (and anything that picks runs).

The original's flags: ``-id 3`` / ``-id 1-3,7,10-12`` / ``-id all``, ``-request SQL``,
``-param_name_and_value NAME VALUE`` and the ``_low_threshold`` / ``_high_threshold``
variants. Thresholds compare numbers as numbers when both sides are numbers (the
original compared text, so "10" < "9"), and text otherwise.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mosaic.analysis.sql import StoreSession, check_read_only, open_store
from mosaic.errors import MosaicError, SelectionError
from mosaic.store import Store

_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_FLAGS = {
    "equal": "-param_name_and_value",
    "below": "-param_name_and_value_low_threshold",
    "above": "-param_name_and_value_high_threshold",
}


@dataclass(frozen=True)
class Selection:
    """One selection flag's value; exactly one field is set.

    ``ids``: ``"3"``, ``"1-3,7,10-12"`` or ``"all"``; ``request``: SQL returning run ids;
    ``equal`` / ``below`` / ``above``: ``(NAME, VALUE)``.
    """

    ids: str | None = None
    request: str | None = None
    equal: tuple[str, str] | list[str] | None = None
    below: tuple[str, str] | list[str] | None = None
    above: tuple[str, str] | list[str] | None = None

    def describe(self) -> str:
        """The selection as the flag a user would type."""
        if self.ids is not None:
            return f"-id {self.ids}"
        if self.request is not None:
            return f"-request {self.request!r}"
        for name, flag in _FLAGS.items():
            value = getattr(self, name)
            if value is not None:
                return f"{flag} {' '.join(str(v) for v in value)}"
        return "(no selection)"


def parse_ids(text: str) -> list[int] | None:
    """``"1-3,7"`` -> ``[1, 2, 3, 7]``; ``"all"`` -> None. SelectionError names a bad part."""
    text = str(text).strip()
    if text.lower() == "all":
        return None
    if not text:
        raise SelectionError("-id is empty; give run ids like 3, 1-3,7,10-12 or all")
    ids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if part.isdigit():
            first = last = int(part)
        elif match := _RANGE.fullmatch(part):
            first, last = int(match.group(1)), int(match.group(2))
            if first > last:
                raise SelectionError(f"-id {text}: range {part} runs backwards; write {last}-{first}")
        else:
            raise SelectionError(
                f"-id {text}: {part!r} is not a run id or range; write ids and ranges like 1-3,7,10-12, or all"
            )
        if first < 1:
            raise SelectionError(f"-id {text}: run ids start at 1, got {part}")
        ids.update(range(first, last + 1))
    return sorted(ids)


def format_ids(ids: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3,7"`` (the ``-id`` syntax)."""
    parts: list[str] = []
    ordered = sorted(set(ids))
    start = previous = None
    for run_id in [*ordered, None]:
        if run_id is not None and previous is not None and run_id == previous + 1:
            previous = run_id
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = run_id
    return ",".join(parts)


def select_runs(store_or_session: StoreSession | Store | str | os.PathLike[str], selection: Selection) -> list[int]:
    """The run ids a selection picks (sorted, unique); SelectionError when malformed or empty.

    ``store_or_session``: an open :class:`StoreSession`, a Store, a store folder or an
    original ``.db``.
    """
    chosen = [name for name in ("ids", "request", *_FLAGS) if getattr(selection, name) is not None]
    if len(chosen) != 1:
        raise SelectionError(
            "give exactly one of -id, -request, -param_name_and_value, "
            f"-param_name_and_value_low_threshold, -param_name_and_value_high_threshold (got {len(chosen)})"
        )
    if isinstance(store_or_session, StoreSession):
        return _select(store_or_session, selection, chosen[0])
    path = store_or_session.path if isinstance(store_or_session, Store) else Path(store_or_session)
    with open_store(path) as session:
        return _select(session, selection, chosen[0])


def _select(session: StoreSession, selection: Selection, kind: str) -> list[int]:
    where = f" in {session.path}"
    if kind in ("ids", "request"):
        known = {r for (r,) in session.fetch("SELECT DISTINCT run_id FROM runs_all")}
    if kind == "ids":
        wanted = parse_ids(selection.ids or "")
        if wanted is None:
            if not known:
                raise SelectionError(f"-id all: no runs{where} yet")
            return sorted(known)
        _check_known(wanted, known, selection, where)
        return wanted
    if kind == "request":
        ids = _request(session, selection.request or "")
        if not ids:
            raise SelectionError(f"-request {selection.request!r} returned no run id{where}")
        _check_known(ids, known, selection, where)
        return ids
    pair = getattr(selection, kind)
    if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
        raise SelectionError(f"{_FLAGS[kind]} takes NAME VALUE, got {pair!r}")
    name, value = str(pair[0]), str(pair[1])
    _check_name(session, name, kind, where)
    ids = sorted({r for (r,) in session.fetch(_param_query(kind), _param_arguments(kind, name, value))})
    if not ids:
        values = [v for (v,) in session.fetch(
            "SELECT DISTINCT param_value FROM params WHERE param_name = ? ORDER BY 1 LIMIT 11", [name])]
        shown = ", ".join(str(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
        raise SelectionError(f"no run matches {selection.describe()}{where}; {name} takes the values: {shown}")
    return ids


def _check_known(ids: list[int], known: set[int], selection: Selection, where: str) -> None:
    missing = [i for i in ids if i not in known]
    if missing:
        held = format_ids(known) if known else "none"
        raise SelectionError(f"{selection.describe()}: run ids {format_ids(missing)} are not{where} (it holds {held})")


def _request(session: StoreSession, sql: str) -> list[int]:
    try:
        check_read_only(sql)
    except MosaicError as exc:
        raise SelectionError(f"-request: {exc}") from None
    try:
        relation = session.sql(sql)
        types = [str(t) for t in relation.types]
        if len(types) != 1 or types[0] not in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
                                                "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}:
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


def _check_name(session: StoreSession, name: str, kind: str, where: str) -> None:
    # the raw table has the same names as the view (superseding rows keep their name), faster
    names = [n for (n,) in session.fetch("SELECT DISTINCT param_name FROM params_all ORDER BY 1")]
    names += ["status", "traceback"]
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f"close names: {', '.join(close)}" if close else f"names include: {', '.join(names[:12])}"
    raise SelectionError(f"{_FLAGS[kind]} {name}: no parameter of that name{where}; {hint}")


def _param_query(kind: str) -> str:
    if kind == "equal":
        return "SELECT run_id FROM params WHERE param_name = ? AND param_value = ?"
    op = "<" if kind == "below" else ">"
    # numbers compare as numbers when both sides are numbers; otherwise as text
    return f"""
        SELECT run_id FROM params WHERE param_name = ? AND CASE
            WHEN ?::DOUBLE IS NOT NULL AND TRY_CAST(trim(param_value) AS DOUBLE) IS NOT NULL
            THEN TRY_CAST(trim(param_value) AS DOUBLE) {op} ?::DOUBLE
            ELSE param_value {op} ? END"""


def _param_arguments(kind: str, name: str, value: str) -> list[object]:
    if kind == "equal":
        return [name, value]
    number = float(value) if _NUMBER.fullmatch(value.strip()) else None
    return [name, number, number, value]
