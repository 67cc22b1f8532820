"""Where runs execute: an embedded ``LocalCluster`` or an existing Dask scheduler.

:func:`open_cluster` connects (or starts the embedded cluster from a
:class:`~mosaic.exec.cluster.workers.WorkerPlan`) and returns a :class:`Cluster`: the client,
what it can run at once, the sweep's plugins, and :meth:`Cluster.submit`, the one way a
task reaches a worker. On a remote cluster, GPU runs go to the workers that advertise a
``GPU`` resource.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client, Future, LocalCluster, as_completed
from distributed.comm.core import CommClosedError
from distributed.scheduler import KilledWorker

from mosaic.config import Monitor
from mosaic.errors import RunError, UsageError
from mosaic.exec.cluster import worker_start
from mosaic.exec.cluster.entry import execute_batch
from mosaic.exec.cluster.local import start_local_cluster
from mosaic.exec.cluster.page import (
    PAGE,
    LazyDashboard,
    MosaicPage,
    driver_records,
    end_sweep,
    show_plan,
)
from mosaic.exec.cluster.plugins import MosaicPlugin, WorkerSetup
from mosaic.exec.cluster.workers import GPU, WorkerPlan, check_gpu, plan_workers
from mosaic.exec.wire.events import Event
from mosaic.exec.wire.task import RunOutcome, RunTask
from mosaic.store.status import RunStatus


def local_plan(monitor: Monitor, workers: int | None = None) -> WorkerPlan:
    """The embedded cluster's plan, every check made (a config that cannot run here fails
    before anything is written): ``--workers``, CUDA for ``need_gpu``, ``MOSAIC_WORKER_START``."""
    plan = plan_workers(monitor, workers)
    check_gpu(monitor)
    worker_start.start_method(gpu=monitor.need_gpu)
    return plan


@dataclass
class Cluster:
    """A connected client, and the local cluster when Mosaic started one."""

    client: Client
    local: LocalCluster | None = None
    plan: WorkerPlan | None = None
    task_resources: Mapping[str, float] | None = None
    owns_client: bool = True
    prepare: WorkerSetup | None = None
    dashboard: str | None = None
    page: str | None = None
    plugins: list[str] = field(default_factory=list)
    sweeps: list[tuple[int, str]] = field(default_factory=list)  # sweeps shown on the scheduler's page

    @property
    def slots(self) -> int:
        """How many runs can execute at once."""
        info = self.client.scheduler_info(n_workers=-1)["workers"].values()
        if self.task_resources:
            return max(1, sum(int(w.get("resources", {}).get(GPU, 0)) for w in info))
        return max(1, sum(int(w.get("nthreads", 1)) for w in info))

    def check_workers(self, since: float | None, timeout: float) -> float | None:
        """None while the cluster has workers; else since when it has none (now, the first
        time). Raises RunError once it has had none for ``timeout`` seconds."""
        if self.client.scheduler_info(n_workers=-1)["workers"]:
            return None
        since = since if since is not None else time.monotonic()
        if time.monotonic() - since > timeout:
            raise RunError(f"no Dask worker for {timeout:.0f} s (they died and none came back); "
                           "the runs not finished are marked interrupted: continue with 'mosaic resume STORE'")
        return since

    def submit(self, tasks: list[RunTask], topic: str, key: str) -> Future[list[RunOutcome]]:
        """Submit one task: ``tasks`` trained in turn on one worker by
        :func:`~mosaic.exec.cluster.entry.execute_batch`, under the Dask key ``key``."""
        return self.client.submit(execute_batch, tasks, topic, key, pure=False, key=key, resources=self.task_resources)

    def completions(self) -> as_completed:
        """An empty ``as_completed`` on this client's loop: add futures, take those done."""
        return as_completed(loop=self.client.loop)

    def subscribe(self, topic: str, handler: Callable[[tuple[float, Any]], None]) -> None:
        """Call ``handler`` (on the client's event loop) with every event on ``topic``."""
        self.client.subscribe_topic(topic, handler)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (the cluster may already be gone)."""
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(topic)

    def cancel(self, futures: list[Future[Any]]) -> None:
        """Cancel tasks not started (or still running)."""
        self.client.cancel(futures)

    def install(self, plugin: MosaicPlugin) -> None:
        """Register a sweep's plugin on every current and future worker; hand its plan to the
        scheduler's Mosaic page."""
        self.client.register_plugin(plugin, name=plugin.name)
        self.plugins.append(plugin.name)
        if plugin.plan is not None and self.page is not None and show_plan(self.client, plugin.plan):
            self.sweeps.append((plugin.sweep_id, plugin.token))

    def tell_page(self, plugin: MosaicPlugin, statuses: Sequence[tuple[int, RunStatus, str]] = (),
                  decisions: Sequence[Mapping[str, Any]] = ()) -> None:
        """Tell the scheduler's Mosaic page what only the driver decides: runs' statuses
        (``(run_id, status, text)``: a search's stops) and a search's decisions (rows of the
        ``decisions`` table). On the sweep's topic; nothing when there is no page."""
        records = driver_records(statuses, decisions)
        if records and self.page is not None:
            with contextlib.suppress(Exception):  # the page is a view: the sweep goes on without it
                self.client.log_event(plugin.topic, records)

    def close(self) -> None:
        """Remove this sweep's plugins (its page knows it ended); close the client and local
        cluster Mosaic started."""
        for sweep_id, token in self.sweeps:
            end_sweep(self.client, sweep_id, token)
        self.sweeps.clear()
        for name in self.plugins:
            with contextlib.suppress(Exception):
                self.client.unregister_worker_plugin(name)
        self.plugins.clear()
        if self.owns_client:
            with contextlib.suppress(Exception):
                self.client.close(timeout=10)
        if self.local is not None:
            with contextlib.suppress(Exception):
                self.local.close(timeout=10)


def open_cluster(
    monitor: Monitor,
    *,
    client: Client | None = None,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    plan: WorkerPlan | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> Cluster:
    """Connect to the cluster a sweep runs on.

    An explicit ``client`` is used as is (and left open); ``scheduler``/``scheduler_file``
    connect to an existing cluster; otherwise a LocalCluster is started from ``plan`` (made
    here from ``monitor`` and ``workers`` when not given: :func:`local_plan`). Raises
    RunError when the cluster is unreachable or cannot run GPU tasks.
    """
    emit = on_event or (lambda event: None)
    if sum(x is not None for x in (client, scheduler, scheduler_file)) > 1:
        raise UsageError("give one of client, --scheduler or --scheduler-file, not several")
    if client is not None or scheduler is not None or scheduler_file is not None:
        owns = client is None
        if client is None:
            client = _connect(scheduler, scheduler_file)
        resources = {GPU: 1} if monitor.need_gpu else None
        prepare = WorkerSetup(gpu=monitor.need_gpu, **cache_settings(monitor))
        cluster = Cluster(client, task_resources=resources, owns_client=owns, prepare=prepare)
        if resources and not any(
            w.get("resources", {}).get(GPU) for w in client.scheduler_info(n_workers=-1)["workers"].values()
        ):
            cluster.close()
            assert client.scheduler is not None  # a connected client
            raise RunError(
                f"need_gpu = True but no worker of the scheduler at {client.scheduler.address} advertises a GPU "
                "resource; start the workers with 'dask worker ADDRESS --resources GPU=1'"
            )
        if workers is not None:
            emit(Event("warning", text="--workers is ignored with an existing cluster"))
        workers_now = len(client.scheduler_info(n_workers=-1)["workers"])
        cluster.dashboard, cluster.page = _dashboard(client, local=False), _install_page(client, emit)
        assert client.scheduler is not None  # a connected client
        emit(Event("cluster", text=f"scheduler {client.scheduler.address}", total=workers_now, link=cluster.dashboard, page=cluster.page))
        return cluster
    plan = plan or local_plan(monitor, workers)
    setup = WorkerSetup(plan.torch_threads, plan.devices, monitor.need_gpu, **cache_settings(monitor), quick_exit=True)
    local = start_local_cluster(plan.workers, plan.worker_resources, setup)
    try:
        client = Client(local, set_as_default=False)
    except BaseException:
        local.close()
        raise
    link, page = _dashboard(client, local=True), _install_page(client, emit)
    emit(Event("cluster", text=f"local cluster {local.scheduler_address}", total=plan.workers, link=link, page=page))
    return Cluster(client, local=local, plan=plan, task_resources=plan.task_resources, dashboard=link, page=page)


def cache_settings(monitor: Monitor) -> dict[str, Any]:
    """WorkerSetup's cache arguments: ``cache_database_path`` made absolute against the
    current folder (where the original kept its cache database) and ``cache_size`` in bytes."""
    path = Path(monitor.cache_database_path).expanduser()
    return {"cache_dir": str(path if path.is_absolute() else Path.cwd() / path), "cache_bytes": monitor.cache_size}


def _connect(scheduler: str | None, scheduler_file: str | os.PathLike[str] | None) -> Client:
    if scheduler_file is not None and not Path(scheduler_file).is_file():
        raise UsageError(f"--scheduler-file {scheduler_file}: file not found; start the scheduler with 'dask scheduler --scheduler-file {scheduler_file}'")
    where = scheduler or f"the scheduler of {scheduler_file}"
    try:
        if scheduler_file is not None:
            return Client(scheduler_file=str(scheduler_file), timeout="15s", set_as_default=False)
        return Client(scheduler, timeout="15s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise RunError(f"cannot reach the Dask scheduler at {where}: {exc}; check the address or drop --scheduler to use a local cluster") from None


def _http_base(client: Client) -> str | None:
    """The scheduler's HTTP server (``http://host:port``); None when it runs without one."""
    with contextlib.suppress(Exception):
        link = client.dashboard_link
        return link.rsplit("/", 1)[0] if link else None
    return None


def _dashboard(client: Client, local: bool) -> str | None:
    """The Dask dashboard's link: the local one when bokeh is installed here (built on its
    first visit, see LazyDashboard), else the scheduler's own."""
    base = _http_base(client)
    if base is None or (local and not importlib.util.find_spec("bokeh")):
        return None
    if local:
        try:
            client.register_plugin(LazyDashboard(), name=LazyDashboard.name)
        except Exception:  # noqa: BLE001 - no link rather than a link to nothing
            return None
    return f"{base}/status"


def _install_page(client: Client, emit: Callable[[Event], None]) -> str | None:
    """Serve the Mosaic page from the scheduler (see mosaic.exec.cluster.page); its link, or None."""
    base = _http_base(client)
    if base is None:
        return None
    try:
        client.register_plugin(MosaicPage(), name=MosaicPage.name)
    except Exception as exc:  # noqa: BLE001 - e.g. a scheduler without mosaic installed
        emit(Event("warning", text=f"no Mosaic page on the dashboard: the scheduler cannot load it ({type(exc).__name__}: {exc}); install mosaic where the scheduler runs"))
        return None
    return base + PAGE


def is_worker_death(exc: BaseException | None) -> bool:
    """True when a task's error says its worker died (killed, or its connection closed)."""
    return isinstance(exc, KilledWorker | CommClosedError)
