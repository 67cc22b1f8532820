"""``mosaic.__all__`` is exactly what the package exports, and every CLI command calls one of them
(in the manner of httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import inspect
import types

import mosaic
from mosaic.cli import COMMANDS, build_parser

#: Written out here, independent of the list it checks: a name added to or dropped from the API
#: must be added to or dropped from this set too.
EXPECTED = {
    "Config", "ConfigError", "MosaicError", "Reader", "RunError", "RunStatus", "Selection", "SelectionError",
    "StoreError", "UsageError", "__version__", "compact", "export", "format_pipeline", "generate", "import_db",
    "init", "load_config", "metaplot", "open_reader", "open_store", "pause", "plotloss", "query",
    "promote", "read_pipelines", "rekey", "replay", "report", "rerun", "resume", "run", "savedb", "select_runs", "status", "Verdict", "verdict",
    "ui", "watch_status", "write_pipelines",
}


def _exported() -> set[str]:
    """Every public name the package really holds once its lazy names are resolved."""
    for name in dir(mosaic):
        getattr(mosaic, name)
    return {
        name for name, value in vars(mosaic).items()
        if (not name.startswith("_") or name == "__version__") and not isinstance(value, types.ModuleType)
    }


def test_all_is_exactly_the_expected_api() -> None:
    assert set(mosaic.__all__) == EXPECTED
    assert mosaic.__all__ == sorted(set(mosaic.__all__) - {"__version__"}) + ["__version__"]


def test_all_imports_are_exported() -> None:
    assert _exported() == EXPECTED


def test_every_exported_member_resolves_to_mosaic_code() -> None:
    for name in EXPECTED - {"__version__"}:
        value = getattr(mosaic, name)
        assert value.__module__.startswith("mosaic."), name
        assert inspect.getdoc(value), f"mosaic.{name} has no docstring"


def test_every_cli_command_calls_a_public_function() -> None:
    build_parser()
    assert set(COMMANDS) >= {"run", "status", "query", "import", "plotloss"}
    for command, function in COMMANDS.items():
        assert function in EXPECTED, command
        assert inspect.isfunction(getattr(mosaic, function)), command
