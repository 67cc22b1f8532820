"""Run selection, shared by ``rerun`` and ``plotloss`` (and anything that picks runs).

This module parses the flags and says what is wrong with them; the data comes from a
reader (:meth:`mosaic.store.reader.Reader.run_ids` calls :func:`resolve`).

The original's flags: ``-id 3`` / ``-id 1-3,7,10-12`` / ``-id all``, ``-request SQL``,
``-param_name_and_value NAME VALUE`` and the ``_low_threshold`` / ``_high_threshold``
variants. Thresholds are inclusive, as the original's: ``_low_threshold NAME VALUE``
picks ``NAME <= VALUE`` and ``_high_threshold NAME VALUE`` picks ``NAME >= VALUE``. They
compare numbers as numbers when both sides are numbers (the original compared sqlite
values, so a text "10" was not below "9" numerically), and text otherwise.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mosaic.errors import SelectionError

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


class Source(Protocol):
    """What :func:`resolve` needs from a reader."""

    path: Path

    def known_run_ids(self) -> set[int]: ...  # noqa: D102
    def request(self, sql: str) -> list[int]: ...  # noqa: D102
    def param_names(self) -> list[str]: ...  # noqa: D102
    def param_values(self, name: str, limit: int | None = None) -> list[str]: ...  # noqa: D102
    def matching_runs(self, name: str, kind: str, value: str, number: float | None) -> list[int]: ...  # noqa: D102


def check(selection: Selection) -> str:
    """The one flag ``selection`` sets (``ids``, ``request``, ``equal``, ``below``, ``above``)."""
    chosen = [name for name in ("ids", "request", *_FLAGS) if getattr(selection, name) is not None]
    if len(chosen) != 1:
        raise SelectionError(
            "give exactly one of -id, -request, -param_name_and_value, "
            f"-param_name_and_value_low_threshold, -param_name_and_value_high_threshold (got {len(chosen)})"
        )
    return chosen[0]


def resolve(source: Source, selection: Selection) -> list[int]:
    """The run ids ``selection`` picks in ``source`` (sorted, unique); SelectionError when
    malformed or empty."""
    kind = check(selection)
    where = f" in {source.path}"
    if kind in ("ids", "request"):
        known = source.known_run_ids()
    if kind == "ids":
        wanted = parse_ids(selection.ids or "")
        if wanted is None:
            if not known:
                raise SelectionError(f"-id all: no runs{where} yet")
            return sorted(known)
        _check_known(wanted, known, selection, where)
        return wanted
    if kind == "request":
        ids = source.request(selection.request or "")
        if not ids:
            raise SelectionError(f"-request {selection.request!r} returned no run id{where}")
        _check_known(ids, known, selection, where)
        return ids
    pair = getattr(selection, kind)
    if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
        raise SelectionError(f"{_FLAGS[kind]} takes NAME VALUE, got {pair!r}")
    name, value = str(pair[0]), str(pair[1])
    _check_name(source, name, kind, where)
    number = float(value) if kind != "equal" and _NUMBER.fullmatch(value.strip()) else None
    ids = sorted(set(source.matching_runs(name, kind, value, number)))
    if not ids:
        values = source.param_values(name, limit=11)
        shown = ", ".join(str(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
        raise SelectionError(f"no run matches {selection.describe()}{where}; {name} takes the values: {shown}")
    return ids


def _check_known(ids: list[int], known: set[int], selection: Selection, where: str) -> None:
    missing = [i for i in ids if i not in known]
    if missing:
        held = format_ids(known) if known else "none"
        raise SelectionError(f"{selection.describe()}: run ids {format_ids(missing)} are not{where} (it holds {held})")


def _check_name(source: Source, name: str, kind: str, where: str) -> None:
    names = [*source.param_names(), "status", "traceback"]
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f"close names: {', '.join(close)}" if close else f"names include: {', '.join(names[:12])}"
    raise SelectionError(f"{_FLAGS[kind]} {name}: no parameter of that name{where}; {hint}")
