"""How many workers run where: the local worker layout and the GPU check.

CPU: ``nb_processus`` worker processes (or ``--workers``), one thread each, torch threads
set so workers x threads <= cores. GPU (``need_gpu = True``): one worker per entry of
``gpu_available``, each pinned to its device (:class:`~mosaic.exec.cluster.plugins.WorkerSetup`),
every worker advertising one ``GPU`` resource and every task asking for one, so two runs
never share a device. The driver makes this plan once, before anything is written: a config
that cannot run fails first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mosaic.config import Monitor
from mosaic.errors import RunError, UsageError

#: The resource a GPU worker advertises and a GPU task asks for.
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
