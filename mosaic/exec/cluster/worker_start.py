"""How the embedded cluster's worker processes start: forked from one preloaded server.

A spawned worker is a fresh interpreter that imports distributed and torch, then torch's
lazy optimizer imports, before its first run: seconds of CPU per worker, on the cores the first
runs need, and again for every worker that replaces a dead one. On Linux the embedded
cluster instead starts multiprocessing's fork server once per driver process with those
imports done (:data:`PRELOAD`), and Dask's nannies fork each worker from it: the first runs
start sooner and a short sweep uses less CPU (figures: bench/BENCHMARKS.md).

The server starts with the environment Dask gives a spawned worker
(``distributed.nanny.pre-spawn-environ``: one OpenMP/BLAS thread, a fixed hash seed), set
in this process as Dask's nanny sets it before a spawn. Without it, numpy's OpenBLAS starts a
thread pool in the server and every forked worker gets a spinning copy of it (more CPU per
run for nothing). Each worker is also given this process's environment as it is when
the worker starts (a nanny ``env``), as a spawned worker would see it.

GPU workers are spawned: a fork server that had touched CUDA (a library calling
``torch.cuda.is_available()`` at import is enough) would hand its children a CUDA they
cannot use, and a GPU worker's start is small beside its runs. On other systems workers are
spawned unless ``MOSAIC_WORKER_START=forkserver`` (macOS has a fork server, but forking once
Apple's frameworks are loaded is known to crash; untested here). ``MOSAIC_WORKER_START=spawn``
keeps Dask's own way on Linux too, as does a ``distributed.worker.multiprocessing-method``
set to anything but ``spawn``.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

import dask

from mosaic.errors import UsageError

#: The environment variable choosing how CPU workers start: forkserver (default on Linux) or spawn.
ENV = "MOSAIC_WORKER_START"
#: Imported once by the fork server: what every worker needs before its first run. No module
#: here may touch CUDA, or start a thread beyond numpy's BLAS pool (which the server's
#: one-thread environment keeps from starting), at import: a forked child has neither.
PRELOAD = ("distributed", "torch", "torch.optim", "torch._dynamo", "mosaic.exec.training.run")
_METHODS = ("forkserver", "spawn")


def start_method(gpu: bool = False) -> str:
    """``forkserver`` or ``spawn``: how the embedded cluster's workers start here (``gpu``:
    GPU workers, always spawned).

    Raises UsageError for a ``MOSAIC_WORKER_START`` that is neither.
    """
    chosen = os.environ.get(ENV, "").strip().lower()
    if chosen and chosen not in _METHODS:
        raise UsageError(f"{ENV}={os.environ[ENV]!r}: workers start by 'forkserver' or 'spawn'; set one of them or unset it")
    configured = dask.config.get("distributed.worker.multiprocessing-method", "spawn")
    if not chosen and configured != "spawn":  # the user's own Dask setting
        return str(configured)
    if chosen == "spawn" or gpu or "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    # elsewhere (macOS) forking once its frameworks are loaded is unsafe: only when asked
    return "forkserver" if chosen or sys.platform.startswith("linux") else "spawn"


def prepare(gpu: bool = False) -> str:
    """Start the preloaded fork server when workers start by ``forkserver`` (once per process);
    return the start method for ``distributed.worker.multiprocessing-method``."""
    method = start_method(gpu)
    if method != "forkserver":
        return method
    os.environ.update(spawn_environment())
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    _keep_dask_preload()
    from multiprocessing import forkserver

    forkserver.ensure_running()
    atexit.unregister(stop_server)  # registered once, however many clusters start
    atexit.register(stop_server)
    return method


def spawn_environment() -> dict[str, str]:
    """The variables Dask sets before spawning a worker (``pre-spawn-environ``, a hash seed)."""
    wanted: Mapping[str, object] = dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}
    env = {key: os.environ.get(key, str(value)) for key, value in wanted.items() if value is not None}
    if env.get("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED")) in (None, "0"):
        env["PYTHONHASHSEED"] = "6640"  # Dask's own choice: one hash seed for every worker
    return env


def worker_environment(method: str) -> dict[str, str] | None:
    """The nanny ``env`` of a worker started by ``method``: this process's environment now
    for a forked worker (it inherits the server's, taken when the server started)."""
    return dict(os.environ) if method == "forkserver" else None


def _keep_dask_preload() -> None:
    """Stop Dask replacing our preload list with its own (which imports every optional
    package Dask knows, pandas included, in this process). A private flag of
    ``distributed.utils``: when it is gone, Dask's list only costs those imports."""
    from distributed import utils

    if hasattr(utils, "_forkserver_preload_set"):
        utils._forkserver_preload_set = True


def stop_server() -> None:
    """Stop the fork server this process started, if any, and reap it: its CPU time, and that
    of the workers it forked, then count among this process's children's (as spawned workers'
    do), and its memory (torch imported) is given back. The next embedded cluster starts a new
    one. It is killed, not asked to stop: its interpreter's teardown with torch loaded is
    about a second of CPU for nothing. Runs when this process exits; call it earlier only with
    no embedded cluster open (a nanny watches its worker through the server)."""
    from multiprocessing import forkserver

    server = forkserver._forkserver  # CPython's own handles (its tests stop the server so)
    pid, stop = getattr(server, "_forkserver_pid", None), getattr(server, "_stop", None)
    if pid is None or stop is None:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    stop()


def warm_up(torch: Any) -> None:
    """One optimizer step on a toy model, in a new worker: torch's lazy imports (about 2 s on the
    first ``step()`` when the worker was spawned) happen here instead of in its first run."""
    layer = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 2)).sum().backward()
    optimizer.step()


def exit_at_once() -> None:
    """End this process now, without the interpreter's teardown (see ``WorkerSetup.quick_exit``)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)
