"""Access to the JSON files of ``schemas/``: config keys, store columns, torch names.

The folder lives at the repository top level (the single source of truth); a built wheel
carries a copy inside the package (see pyproject's force-include).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


def schema_dir() -> Path:
    """The folder holding the schema files (packaged copy first, then the source tree)."""
    for candidate in (_HERE / "schemas", _HERE.parent / "schemas"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError("schemas/ not found next to the mosaic package")


@cache
def load(name: str) -> dict[str, Any]:
    """Parse ``schemas/<name>.json`` once."""
    with open(schema_dir() / f"{name}.json", encoding="utf-8") as handle:
        return json.load(handle)


def config_keys(section: str) -> dict[str, dict[str, Any]]:
    """Known keys of ``PROCESS``, ``MONITOR`` or ``class_section`` with their rules."""
    return load("config")[section]


def table_columns(table: str) -> list[tuple[str, str]]:
    """Column names and Arrow type names of a store table, in order."""
    return [(name, kind) for name, kind in load("tables")[table]]


def table_names() -> list[str]:
    """Every store table."""
    return [name for name in load("tables") if not name.startswith("$")]


def torch_names(kind: str) -> list[str]:
    """``losses`` or ``optimizers``: class names valid in a config."""
    return load("torch_names")[kind]
