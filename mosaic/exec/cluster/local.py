"""The embedded cluster: a ``LocalCluster`` of worker processes on 127.0.0.1.

Its scheduler runs with ``allowed-failures = 0`` (a run that kills its worker fails at once
as ``system failure`` instead of killing three more) and ``worker-saturation = 1.0`` (a
worker holds only the run it executes, so its death takes no innocent run with it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import dask
from distributed import LocalCluster

from mosaic.exec.cluster import worker_start
from mosaic.exec.cluster.plugins import WorkerSetup
from mosaic.exec.cluster.workers import GPU

#: Scheduler settings of the embedded cluster (see the module docstring).
LOCAL_SCHEDULER_CONFIG: Mapping[str, Any] = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
    # no work stealing (every 100 ms; one run per worker slot leaves nothing to steal), and
    # the event loops' 20 ms tick and 0.5 s system monitor slowed down: CPU the driver and
    # the workers' training threads get back on a small machine
    "distributed.scheduler.work-stealing": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}
#: Worker settings of the embedded cluster: no statistical profiler (a thread sampling the
#: training thread every 10 ms, for a dashboard page) and a slower memory monitor, so the
#: training thread keeps the GIL on a busy machine.
LOCAL_WORKER_CONFIG: Mapping[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
}


class _LocalCluster(LocalCluster):
    """A LocalCluster that waits for a dead worker's nanny to restart it, however long that takes.

    Distributed closes the nanny of a worker that has not re-registered within
    ``distributed.deploy.lost-worker-timeout`` (15 s): on a loaded machine a restart
    (spawn, import torch, warm up) takes longer, and a sweep whose runs killed both workers
    would be left with none and wait forever.
    """

    def _update_worker_status(self, op: str, msg: Any) -> None:
        with dask.config.set({"distributed.deploy.lost-worker-timeout": "365d"}):  # read right here
            super()._update_worker_status(op, msg)  # type: ignore[no-untyped-call]  # unannotated in distributed


def start_local_cluster(
    workers: int, resources: Mapping[str, float] | None = None, setup: WorkerSetup | None = None
) -> LocalCluster:
    """An embedded cluster: ``workers`` processes of one thread on 127.0.0.1, set up by ``setup``.

    Worker processes are forked from a preloaded server where the platform allows, else
    spawned (GPU workers, see :mod:`mosaic.exec.cluster.worker_start`); either way a script calling
    ``mosaic.run`` needs the usual ``if __name__ == "__main__":`` guard. A worker that
    replaces a dead one is spawned.
    """
    method = worker_start.prepare(gpu=bool(resources and resources.get(GPU)))
    # the scheduler's HTTP server (the dashboard when bokeh is installed) on a free loopback port
    dashboard_address = "127.0.0.1:0"
    settings = {**LOCAL_SCHEDULER_CONFIG, **LOCAL_WORKER_CONFIG, "distributed.worker.multiprocessing-method": method}
    with dask.config.set(settings):
        return _LocalCluster(  # type: ignore[no-untyped-call]  # LocalCluster.__init__ is unannotated
            env=worker_start.worker_environment(method),
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=dashboard_address,
            resources=dict(resources) if resources else None,
            plugins=(setup,) if setup is not None else (),
            silence_logs=logging.CRITICAL,
            # Dask's bokeh dashboard is built on its first visit (LazyDashboard, installed
            # by open_cluster): building it here takes CPU from the workers' start
            scheduler_kwargs={"dashboard": False},
        )
