"""What the test modules share, in one place (in the manner of Dask's ``distributed.utils_test``).

Test modules import from here and never from one another; ``tests/conftest.py`` holds the
fixtures. The modules of this package:

- this one: the paths of the test data and of the installed commands, stopping helper processes;
- :mod:`tests.helpers.stores`: stores written row by row with the store's own writer, the
  store states every reader must handle, the views' columns;
- :mod:`tests.helpers.contract`: :class:`~tests.helpers.contract.ReaderContract`, the reader
  contract a subclass runs against one kind of store;
- :mod:`tests.helpers.training`: run tasks and tiny models for the worker side;
- :mod:`tests.helpers.servers`: a real HTTP server on 127.0.0.1 and a bounded GET;
- :mod:`tests.helpers.legacy`: the original ``mosaic_generate`` restated;
- :mod:`tests.helpers.cache_workers`: functions spawned processes import by name;
- :mod:`tests.helpers.drivers`: a `mosaic` command as a subprocess killed on demand, waits with deadlines;
- :mod:`tests.helpers.curves`: stores of chosen loss curves (a full grid, a halving sweep's decisions);
- :mod:`tests.helpers.live`: boards of the live view, planned and trained without a cluster;
- :mod:`tests.helpers.browser`: a real headless Chromium (the DOM after its scripts ran, screenshots).

This ``__init__`` stays light (no torch, no mosaic): processes spawned by the tests import
:mod:`tests.helpers.cache_workers` through it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
TUTORIAL = ROOT / "mosaic" / "examples" / "tutorial"
#: configs and classes of the driver tests (the tiny, slow, faulty and GPU sweeps)
CLASSES_DRIVER = DATA / "classes_driver"
#: the worker tests' class file
CLASSES_WORKER = DATA / "classes_worker" / "classes.py"
#: a database and run files written by the original tool
LEGACY = DATA / "legacy"
LEGACY_DB = LEGACY / "legacy_sample.db"
LEGACY_RUNS = LEGACY / "legacy_runs"
#: the original tool's example classes, as its users wrote them
ORIGINAL_EXAMPLES = DATA / "original_examples"
#: the installed commands (mosaic, mosaic_run, ..., dask) beside this interpreter
BIN = Path(sys.executable).parent
MOSAIC = BIN / "mosaic"
DASK = BIN / "dask"


def stop_processes(processes: list[subprocess.Popen]) -> None:
    """Terminate helper processes (last started first), killing any that do not exit in 20 s."""
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)

