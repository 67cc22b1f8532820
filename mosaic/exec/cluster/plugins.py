"""The worker plugins Mosaic registers: :class:`WorkerSetup` prepares a worker process (its
device, torch threads, dataset cache, a warm-up), :class:`MosaicPlugin` one sweep's
``sys.path`` entries, task keys and topic on every worker (and, on the driver, the sweep's
plan for the scheduler's Mosaic page).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import sys
import time
from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from mosaic.config import Config
from mosaic.exec.cluster import worker_start
from mosaic.exec.cluster.workers import GPU, device_for
from mosaic.exec.wire.events import batch_key, run_key, sweep_topic
from mosaic.exec.wire.transfer import is_url
from mosaic.live.board import Plan


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
        """Pin the device, set torch threads and the cache, and warm torch up."""
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
            from mosaic.exec.training import run  # noqa: F401 - the worker's runs need it: loaded now, not in the first run


class MosaicPlugin(WorkerPlugin):
    """One sweep's worker plugin: its ``sys.path`` entries, task keys and topics.

    The runs of a task announce themselves on ``topic`` (see :func:`~mosaic.exec.cluster.entry.execute_batch`); the
    driver turns a start into a ``running`` row. On a cluster Mosaic did not start, it also
    runs ``prepare`` (a :class:`WorkerSetup`). A random ``token`` in its name, topics and task
    keys keeps apart two sweeps with one id (two stores) on a shared scheduler.

    Given the sweep's ``runs`` and ``config``, it also holds the sweep's :attr:`plan` for the
    scheduler's Mosaic page (each run's dataset and model, its planned epochs: see
    :class:`mosaic.live.board.Plan`); :meth:`~mosaic.exec.cluster.connect.Cluster.install`
    hands it over. The plan stays on the driver: workers get the plugin without it.
    """

    def __init__(self, sweep_id: int, paths: tuple[str, ...] = (), prepare: WorkerSetup | None = None, *,
                 runs: Sequence[Any] | None = None, config: Config | None = None, kind: str = "",
                 run_files: str | os.PathLike[str] | None = None) -> None:
        self.sweep_id = sweep_id
        self.token = secrets.token_hex(4)
        self.name = f"mosaic-sweep-{sweep_id}-{self.token}"
        self.topic = sweep_topic(sweep_id, self.token)
        self.paths = paths
        self.prepare = prepare
        self.plan: dict[str, Any] | None = None
        if runs is not None and config is not None:
            files = str(run_files) if run_files is not None and not is_url(str(run_files)) else None
            self.plan = Plan.of(sweep_id, self.token, runs, config.process.data_scheme, config.process.pipeline_scheme,
                                kind=kind, config=str(config.path), started=time.time(), run_files=files).message()

    def __getstate__(self) -> dict[str, Any]:
        """What travels to the workers: everything but the plan."""
        return {**self.__dict__, "plan": None}

    def key(self, run_id: int, resubmit: int = 0) -> str:
        """The task key of a run alone: ``run-<sweep>-<run>-<token>[-<resubmit>]``."""
        return run_key(self.sweep_id, run_id, self.token, resubmit)

    def batch_key(self, first_run: int, count: int, serial: int) -> str:
        """The task key of a batch: ``runs-<sweep>-<first run>x<count>-<token>-<serial>``."""
        return batch_key(self.sweep_id, first_run, count, self.token, serial)

    def setup(self, worker: Any) -> None:
        """Prepare one worker process for this sweep's runs."""
        for path in self.paths:
            if path not in sys.path:
                sys.path.append(path)
        if self.prepare is not None:
            self.prepare.setup(worker)
