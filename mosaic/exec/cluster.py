"""Where runs execute: an embedded ``LocalCluster`` or an existing Dask scheduler.

CPU: ``nb_processus`` worker processes (or ``--workers``), one thread each, torch threads
set so workers x threads <= cores. GPU (``need_gpu = True``): one worker per entry of
``gpu_available``, each pinned to its device by :class:`MosaicPlugin`, every worker
advertising one ``GPU`` resource and every task asking for one, so two runs never share a
device. On a remote cluster, GPU runs go to the workers that advertise a ``GPU`` resource.

The local scheduler runs with ``allowed-failures = 0`` (a run that kills its worker fails at
once as ``system failure`` instead of killing three more) and ``worker-saturation = 1.0``
(a worker holds only the run it executes, so its death takes no innocent run with it).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from mosaic.config import Monitor
from mosaic.errors import RunError, UsageError
from mosaic.exec import worker_start
from mosaic.exec.dashboard import (
    PAGE,
    Announcer,
    EpochReporter,
    LazyDashboard,
    MosaicPage,
    run_key,
    sweep_topic,
)
from mosaic.exec.progress import Event
from mosaic.exec.task import RunOutcome, RunTask, worker_label

#: Scheduler settings of the embedded cluster (see the module docstring).
LOCAL_SCHEDULER_CONFIG: Mapping[str, Any] = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
    # issue 11: no work stealing (every 100 ms; one run per worker slot leaves nothing to
    # steal), and the event loops' 20 ms tick and 0.5 s system monitor slowed down: CPU the
    # driver and the workers' training threads get back on a 2-core machine
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
GPU = "GPU"


@dataclass(frozen=True)
class WorkerPlan:
    """How many local workers to start and how to set each one up."""

    workers: int
    torch_threads: int
    devices: tuple[str, ...] = ()
    worker_resources: Mapping[str, float] | None = None
    task_resources: Mapping[str, float] | None = None

    def device_of(self, worker_name: object) -> str | None:
        """The device pinned to a local worker (workers are named 0, 1, ...)."""
        return device_for(worker_name, self.devices)


def device_for(worker_name: object, devices: tuple[str, ...]) -> str | None:
    """The device of the worker called ``worker_name`` among ``devices`` (None on CPU)."""
    if not devices:
        return None
    try:
        index = int(str(worker_name).rsplit("-", 1)[-1])
    except ValueError:
        index = abs(hash(str(worker_name)))
    return devices[index % len(devices)]


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan_workers(monitor: Monitor, workers: int | None = None, cores: int | None = None) -> WorkerPlan:
    """The local worker layout for a MONITOR section (no process is started).

    ``workers`` overrides ``nb_processus`` (CPU) or takes the first N devices (GPU).
    """
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise UsageError(f"--workers must be a positive integer; got {workers!r}")
    cores = cores or available_cores()
    if monitor.need_gpu:
        devices = monitor.gpu_available[: workers or len(monitor.gpu_available)]
        count = len(devices)
        return WorkerPlan(
            workers=count,
            torch_threads=max(1, cores // count),
            devices=tuple(devices),
            worker_resources={GPU: 1},
            task_resources={GPU: 1},
        )
    count = workers or monitor.nb_processus
    return WorkerPlan(workers=count, torch_threads=max(1, cores // count))


def check_gpu(monitor: Monitor, device_count: int | None = None) -> None:
    """Raise RunError when ``need_gpu`` asks for CUDA devices this machine does not have."""
    if not monitor.need_gpu:
        return
    if device_count is None:
        device_count = _cuda_device_count()
    if device_count == 0:
        raise RunError(
            "[MONITOR] need_gpu = True but CUDA is not available on this machine "
            f"(gpu_available = {', '.join(monitor.gpu_available)}); set need_gpu = False to train on CPU, "
            "or use --scheduler with workers that advertise a GPU resource"
        )
    for device in monitor.gpu_available:
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if device != "cpu" and index >= device_count:
            raise RunError(
                f"[MONITOR] gpu_available: {device} does not exist; this machine has {device_count} CUDA "
                f"device(s): {', '.join(f'cuda:{i}' for i in range(device_count))}"
            )


def _cuda_device_count() -> int:
    # torch is imported only for this check, and only when need_gpu is set
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class WorkerSetup(WorkerPlugin):
    """Per-process setup of a worker: its device, torch threads, dataset cache, and a warm-up.

    The device comes from the worker's name (local GPU workers are named 0, 1, ...) and is
    exported as ``MOSAIC_DEVICE`` (``torch.cuda.set_device`` too when CUDA is there); with
    ``gpu`` and no device list, a worker advertising a ``GPU`` resource uses ``cuda`` unless
    its environment names a device. ``cache_dir``/``cache_bytes`` (MONITOR
    ``cache_database_path``/``cache_size``) become the worker's :mod:`mosaic.cache` defaults,
    used by ``mosaic.lib`` and ``mosaic.cache.fetch``. Local workers get this plugin when they
    start, so it also sets up the replacement of a worker that died.

    ``quick_exit`` (the embedded cluster's own processes only): when the worker process ends,
    it skips the interpreter's teardown (about 0.6 s with torch loaded) once its streams are
    flushed; the worker has closed and sent everything by then.
    """

    name = "mosaic-setup"
    idempotent = True

    def __init__(
        self,
        torch_threads: int | None = None,
        devices: tuple[str, ...] = (),
        gpu: bool = False,
        cache_dir: str | None = None,
        cache_bytes: int | None = None,
        quick_exit: bool = False,
    ) -> None:
        self.quick_exit = quick_exit
        self.torch_threads = torch_threads
        self.devices = devices
        self.gpu = gpu
        self.cache_dir = cache_dir
        self.cache_bytes = cache_bytes

    def setup(self, worker: Any) -> None:
        """Pin the device, set torch threads and the cache, import the runner and warm torch up."""
        if self.quick_exit:
            atexit.register(worker_start.exit_at_once)  # runs first: atexit calls the latest registered first
        if self.cache_dir is not None:
            from mosaic import cache

            cache.configure(self.cache_dir, self.cache_bytes)
        device = device_for(worker.name, self.devices)
        if device is None and self.gpu and worker.state.total_resources.get(GPU):
            device = os.environ.get("MOSAIC_DEVICE", "cuda")
        if device is not None:
            os.environ["MOSAIC_DEVICE"] = device
        with contextlib.suppress(Exception):
            import torch

            if self.torch_threads:
                torch.set_num_threads(self.torch_threads)
            if device and device.startswith("cuda") and torch.cuda.is_available():
                torch.cuda.set_device(device)
            worker_start.warm_up(torch)
        with contextlib.suppress(Exception):
            importlib.import_module("mosaic.exec.runner")


class MosaicPlugin(WorkerPlugin):
    """One sweep's worker plugin: its ``sys.path`` entries, task keys and topics.

    The runs of a task announce themselves on ``topic`` (see :func:`execute_batch`); the
    driver turns a start into a ``running`` row. On a cluster Mosaic did not start, it also
    runs ``prepare`` (a :class:`WorkerSetup`). A random ``token`` in its name, topics and task
    keys keeps apart two sweeps with one id (two stores) on a shared scheduler.
    """

    def __init__(self, sweep_id: int, paths: tuple[str, ...] = (), prepare: WorkerSetup | None = None) -> None:
        self.sweep_id = sweep_id
        self.token = secrets.token_hex(4)
        self.name = f"mosaic-sweep-{sweep_id}-{self.token}"
        self.topic = sweep_topic(sweep_id, self.token)
        self.paths = paths
        self.prepare = prepare

    def key(self, run_id: int, resubmit: int = 0) -> str:
        """The task key of a run alone: ``run-<sweep>-<run>-<token>[-<resubmit>]``."""
        return run_key(self.sweep_id, run_id, self.token, resubmit)

    def batch_key(self, first_run: int, count: int, serial: int) -> str:
        """The task key of a batch: ``runs-<sweep>-<first run>x<count>-<token>-<serial>``."""
        return f"runs-{self.sweep_id}-{first_run}x{count}-{self.token}-{serial}"

    def reporter(self, run_id: int, attempt: int, epochs: int) -> EpochReporter:
        """The training callback that reports each epoch of a run (for the Mosaic page)."""
        return EpochReporter(run_id, attempt, epochs)

    def setup(self, worker: Any) -> None:
        """Prepare one worker process for this sweep's runs."""
        for path in self.paths:
            if path not in sys.path:
                sys.path.append(path)
        if self.prepare is not None:
            self.prepare.setup(worker)


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

    def install(self, plugin: MosaicPlugin) -> None:
        """Register a sweep's plugin on every current and future worker."""
        self.client.register_plugin(plugin, name=plugin.name)
        self.plugins.append(plugin.name)

    def close(self) -> None:
        """Remove this sweep's plugins; close the client and local cluster Mosaic started."""
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


class _LocalCluster(LocalCluster):
    """A LocalCluster that waits for a dead worker's nanny to restart it, however long that takes.

    Distributed closes the nanny of a worker that has not re-registered within
    ``distributed.deploy.lost-worker-timeout`` (15 s): on a loaded machine a restart
    (spawn, import torch, warm up) takes longer, and a sweep whose runs killed both workers
    would be left with none and wait forever.
    """

    def _update_worker_status(self, op: str, msg: Any) -> None:
        with dask.config.set({"distributed.deploy.lost-worker-timeout": "365d"}):  # read right here
            super()._update_worker_status(op, msg)


def start_local_cluster(
    workers: int, resources: Mapping[str, float] | None = None, setup: WorkerSetup | None = None
) -> LocalCluster:
    """An embedded cluster: ``workers`` processes of one thread on 127.0.0.1, set up by ``setup``.

    Worker processes are forked from a preloaded server where the platform allows, else
    spawned (GPU workers, see :mod:`mosaic.exec.worker_start`); either way a script calling
    ``mosaic.run`` needs the usual ``if __name__ == "__main__":`` guard. A worker that
    replaces a dead one is spawned.
    """
    method = worker_start.prepare(gpu=bool(resources and resources.get(GPU)))
    # the scheduler's HTTP server (the dashboard when bokeh is installed) on a free loopback port
    dashboard_address = "127.0.0.1:0"
    settings = {**LOCAL_SCHEDULER_CONFIG, **LOCAL_WORKER_CONFIG, "distributed.worker.multiprocessing-method": method}
    with dask.config.set(settings):
        return _LocalCluster(
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
            # by open_cluster): building it here took ~1.3 s from the workers' start
            scheduler_kwargs={"dashboard": False},
        )


def open_cluster(
    monitor: Monitor,
    *,
    client: Client | None = None,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> Cluster:
    """Connect to the cluster a sweep runs on.

    An explicit ``client`` is used as is (and left open); ``scheduler``/``scheduler_file``
    connect to an existing cluster; otherwise a LocalCluster is started from the plan.
    Raises RunError when the cluster is unreachable or cannot run GPU tasks.
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
            raise RunError(
                f"need_gpu = True but no worker of the scheduler at {client.scheduler.address} advertises a GPU "
                "resource; start the workers with 'dask worker ADDRESS --resources GPU=1'"
            )
        if workers is not None:
            emit(Event("warning", text="--workers is ignored with an existing cluster"))
        workers_now = len(client.scheduler_info(n_workers=-1)["workers"])
        cluster.dashboard, cluster.page = _dashboard(client, local=False), _install_page(client, emit)
        emit(Event("cluster", text=f"scheduler {client.scheduler.address}", total=workers_now, link=cluster.dashboard, page=cluster.page))
        return cluster
    check_gpu(monitor)
    plan = plan_workers(monitor, workers)
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
    """Serve the Mosaic page from the scheduler (see mosaic.exec.dashboard); its link, or None."""
    base = _http_base(client)
    if base is None:
        return None
    try:
        client.register_plugin(MosaicPage(), name=MosaicPage.name)
    except Exception as exc:  # noqa: BLE001 - e.g. a scheduler without mosaic installed
        emit(Event("warning", text=f"no Mosaic page on the dashboard: the scheduler cannot load it ({type(exc).__name__}: {exc}); install mosaic where the scheduler runs"))
        return None
    return base + PAGE


def execute_batch(tasks: list[RunTask], topic: str, key: str) -> list[RunOutcome]:
    """Train ``tasks`` one after the other on this worker; their outcomes in the same order.

    Each run is announced on ``topic`` as it starts (``{"event": "start", "run_id", "key",
    "worker", "device"}``; the task's first run sends it at once) and as it ends
    (``"end"``, with its ``status``), its epochs in between (see
    :class:`~mosaic.exec.dashboard.Announcer`): the records arrive in order, so when the
    worker dies the driver knows which runs finished (their results were lost with the task)
    and, for a run alone in its task, whether it had started. The runner
    (and torch, a heavy import) loads only on the workers, never in the driver.
    """
    from mosaic.exec.runner import execute_run

    channel = Announcer.here(topic)
    alone = len(tasks) == 1
    worker = worker_label()
    outcomes: list[RunOutcome] = []
    try:
        for task in tasks:
            about = {"run_id": task.run_id, "key": key, "worker": worker, "device": task.device_here()}
            for callback in task.callbacks:
                if isinstance(callback, EpochReporter):
                    callback.channel = channel
            # a task's first start goes out at once (a pause leaves started tasks running),
            # confirmed when the run is alone: if it kills its worker, the driver must know it
            # had started. Later starts in a batch wait for the next send (at most
            # SEND_EVERY_S; no run is blamed inside a batch): issue 11, one event per half
            # second instead of one per run
            channel.send({"event": "start", **about}, now=not outcomes, confirmed=alone)
            outcome = execute_run(task)
            outcomes.append(outcome)
            channel.send({"event": "end", "status": outcome.status, **about})
    finally:
        channel.flush()
    return outcomes
