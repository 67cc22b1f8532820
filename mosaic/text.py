"""Small text helpers shared by the commands' outputs: a message's last line, a table cell."""

from __future__ import annotations

from typing import Any


def last_line(text: str) -> str:
    """The last non-blank line of ``text``, stripped (a traceback's exception line)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def format_cell(value: Any, digits: int = 4, null: str = "") -> str:
    """A table cell as text: ``null`` for None, floats to ``digits`` significant digits."""
    if value is None:
        return null
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"):
        return f"{float(value):.{digits}g}"
    return str(value)
