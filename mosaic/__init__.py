"""Mosaic: compare PyTorch models from one .ini file.

The public Python API. Every ``mosaic <command>`` calls the function of the same name here
(``import`` calls :func:`import_db`). Heavy modules (torch, dask, duckdb, altair) load only
when the function that needs them is first used, so ``mosaic generate`` stays quick.
"""

from importlib import import_module as _import_module
from typing import Any as _Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "load_config": "mosaic.config",
    "Config": "mosaic.config",
    "generate": "mosaic.sweep",
    "read_pipelines": "mosaic.sweep",
    "write_pipelines": "mosaic.sweep",
    "format_pipeline": "mosaic.sweep",
    "init": "mosaic.examples",
    "run": "mosaic.exec.driver.commands",
    "resume": "mosaic.exec.driver.commands",
    "rerun": "mosaic.exec.driver.commands",
    "promote": "mosaic.exec.driver.commands",
    "pause": "mosaic.exec.driver.pause",
    "status": "mosaic.exec.driver.status",
    "watch_status": "mosaic.exec.driver.status",
    "open_store": "mosaic.store.session",
    "open_reader": "mosaic.store.reader",
    "Reader": "mosaic.store.reader",
    "RunStatus": "mosaic.store.status",
    "query": "mosaic.analysis.sql",
    "compact": "mosaic.store.writer",
    "Selection": "mosaic.store.selection",
    "select_runs": "mosaic.store.reader",
    "savedb": "mosaic.analysis.legacy",
    "export": "mosaic.analysis.legacy",
    "import_db": "mosaic.analysis.legacy",
    "rekey": "mosaic.analysis.legacy",
    "plotloss": "mosaic.analysis.report",
    "metaplot": "mosaic.analysis.report",
    "report": "mosaic.analysis.report",
    "ui": "mosaic.live.server",
    "verdict": "mosaic.analysis.compare",
    "Verdict": "mosaic.analysis.compare",
    "replay": "mosaic.search.replay",
    "MosaicError": "mosaic.errors",
    "ConfigError": "mosaic.errors",
    "StoreError": "mosaic.errors",
    "RunError": "mosaic.errors",
    "SelectionError": "mosaic.errors",
    "UsageError": "mosaic.errors",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> _Any:
    if name in _API:
        value = getattr(_import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mosaic' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
