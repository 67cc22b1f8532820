"""How the embedded cluster's worker processes start (mosaic.exec.cluster.worker_start): forked
from one preloaded server that started with Dask's one-thread environment, or spawned."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import dask
import psutil
import pytest
from distributed import Client

from mosaic.errors import UsageError
from mosaic.exec.cluster import worker_start
from mosaic.exec.cluster.local import start_local_cluster
from mosaic.exec.cluster.plugins import WorkerSetup

#: the one-thread settings of Dask's pre-spawn environment that keep BLAS and OpenMP pools small
ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: what OpenBLAS builds call their thread count (plain, 64-bit interface, numpy's scipy-openblas)
OPENBLAS_THREADS = ("openblas_get_num_threads", "openblas_get_num_threads64_",
                    "scipy_openblas_get_num_threads", "scipy_openblas_get_num_threads64_")


def _blas_pools() -> dict[str, int]:
    """Each BLAS library loaded in this process and the size of its thread pool, after some numpy
    BLAS work. threadpoolctl's answer when it is installed; else OpenBLAS's own (its
    get_num_threads, the libraries found in /proc/self/maps); else empty (the caller then has
    only the environment to go by).

    The pool size is fixed when the library loads: a fork server that imported numpy without
    Dask's one-thread environment hands every forked worker an OpenBLAS pool of one thread per
    core, whatever the worker's own environment says later.
    """
    import numpy as np

    square = np.ones((200, 200))
    square @ square
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        return {info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:
        return {}
    pools = {}
    for path in paths:
        library = ctypes.CDLL(path)
        for name in OPENBLAS_THREADS:
            get = getattr(library, name, None)
            if get is not None:
                pools[path] = int(get())
                break
    return pools


def _process_facts() -> dict[str, Any]:
    import torch

    return {
        "parent": os.getppid(),
        "late": os.environ.get("MOSAIC_TEST_LATE"),
        "torch_threads": torch.get_num_threads(),
        "one_thread_env": {name: os.environ.get(name) for name in ONE_THREAD},
        "blas_pools": _blas_pools(),
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers fork from a server on Linux only")
def test_cpu_workers_are_forked_from_one_preloaded_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local CPU workers fork from multiprocessing's fork server (torch imported there once),
    which started with Dask's pre-spawn environment; each still sees the driver's environment
    as it is when the cluster starts, as a spawned worker would.

    What the one-thread environment buys is checked where it acts, not by the CPU it saves:
    each worker's BLAS thread pool (inherited from the server) has one thread."""
    monkeypatch.delenv(worker_start.ENV, raising=False)
    assert worker_start.prepare() == "forkserver"  # the server runs from here on (once per process)
    monkeypatch.setenv("MOSAIC_TEST_LATE", "seen")
    cluster = start_local_cluster(2, setup=WorkerSetup(torch_threads=1))
    try:
        with Client(cluster, set_as_default=False) as client:
            facts = list(client.run(_process_facts).values())
    finally:
        cluster.close()
    assert len(facts) == 2
    server = psutil.Process(facts[0]["parent"])
    assert "multiprocessing.forkserver" in " ".join(server.cmdline())
    assert all(f["parent"] == server.pid for f in facts)
    assert server.environ().get("OPENBLAS_NUM_THREADS") == server.environ().get("OMP_NUM_THREADS") == "1"
    assert [(f["late"], f["torch_threads"]) for f in facts] == [("seen", 1)] * 2
    for worker in facts:
        env = worker["one_thread_env"]
        assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1", facts
        # the pools themselves; where no BLAS library can be asked, the environment above is the check
        assert all(threads == 1 for threads in worker["blas_pools"].values()), facts


def test_how_workers_start_follows_the_environment_and_dask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(worker_start.ENV, raising=False)
    assert worker_start.start_method() == ("forkserver" if sys.platform.startswith("linux") else "spawn")
    assert worker_start.start_method(gpu=True) == "spawn"  # CUDA and a fork server do not mix
    with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}):
        assert worker_start.start_method() == "fork"  # the user's own Dask setting
    monkeypatch.setenv(worker_start.ENV, " Spawn ")
    assert worker_start.start_method() == "spawn" and worker_start.worker_environment("spawn") is None
    monkeypatch.setenv(worker_start.ENV, "threads")
    with pytest.raises(UsageError, match=r"MOSAIC_WORKER_START='threads'.*'forkserver' or 'spawn'"):
        worker_start.start_method()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers fork from a server on Linux only")
def test_the_fork_server_can_be_stopped_and_waited_for() -> None:
    """In a process of its own (a nanny of this session's clusters watches its worker through
    the server): after ``stop_server`` the server is gone, reaped, and a new one starts."""
    code = """
import psutil
from mosaic.exec.cluster import worker_start

def servers():
    return [p for p in psutil.Process().children() if 'multiprocessing.forkserver' in ' '.join(p.cmdline())]

assert worker_start.prepare() == 'forkserver'
first = servers()
worker_start.stop_server()
gone = [p.pid for p in first if psutil.pid_exists(p.pid)]
worker_start.prepare()
again = servers()
print(len(first), gone, len(again), again[0].pid != first[0].pid)
worker_start.stop_server()
"""
    env = {k: v for k, v in os.environ.items() if k != worker_start.ENV}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "[]", "1", "True"]
