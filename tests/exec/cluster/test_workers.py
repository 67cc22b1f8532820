"""How many workers run where (mosaic.exec.cluster.workers): the local worker layout, GPU
placement (checked on CPU) and the GPU check."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from distributed import Client

from mosaic.config import load_config
from mosaic.errors import RunError, UsageError
from mosaic.exec.cluster.local import start_local_cluster
from mosaic.exec.cluster.plugins import WorkerSetup
from mosaic.exec.cluster.workers import check_gpu, device_for, plan_workers
from mosaic.exec.driver.commands import run
from tests.helpers.stores import latest_runs


# -- the plan ---------------------------------------------------------------------------------
def test_cpu_plan_uses_nb_processus_and_shares_the_cores(sweep_dir: Path) -> None:
    monitor = load_config(sweep_dir / "tiny.ini").monitor
    plan = plan_workers(monitor, cores=16)
    assert (plan.workers, plan.torch_threads, plan.devices, plan.task_resources) == (2, 8, (), None)
    assert plan_workers(monitor, workers=3, cores=16).torch_threads == 5
    assert plan_workers(monitor, workers=4, cores=2).torch_threads == 1
    with pytest.raises(UsageError, match="--workers must be a positive integer; got 0"):
        plan_workers(monitor, workers=0)


def test_gpu_plan_is_one_worker_per_device(sweep_dir: Path) -> None:
    monitor = load_config(sweep_dir / "gpu.ini").monitor
    plan = plan_workers(monitor, cores=16)
    assert plan.workers == 2 and plan.devices == ("cuda:0", "cuda:1")
    assert plan.worker_resources == {"GPU": 1} and plan.task_resources == {"GPU": 1}
    assert [plan.device_of(name) for name in (0, 1, "1")] == ["cuda:0", "cuda:1", "cuda:1"]
    assert plan_workers(monitor, workers=1).devices == ("cuda:0",)
    assert device_for("anything", ()) is None


def test_need_gpu_without_cuda_is_refused_before_anything_is_written(sweep_dir: Path, tmp_path: Path) -> None:
    monitor = load_config(sweep_dir / "gpu.ini").monitor
    with pytest.raises(RunError, match="CUDA is not available"):
        check_gpu(monitor, device_count=0)
    with pytest.raises(RunError, match="cuda:1 does not exist"):
        check_gpu(monitor, device_count=1)
    check_gpu(monitor, device_count=2)
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RunError, match="need_gpu = True but CUDA is not available"):
        run(sweep_dir / "gpu.ini", tmp_path / "store")
    assert not (tmp_path / "store").exists()


def _hold_device(log: str, task: int, seconds: float) -> str:
    """(On a worker) take this worker's device for ``seconds``, logging when it takes and leaves it.

    Each line is one write to a file opened for appending, so the lines of both workers land
    whole, in the order they were written."""
    device = os.environ["MOSAIC_DEVICE"]
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"enter {device} {task}\n".encode())
        time.sleep(seconds)  # holds the device: a task sharing it would enter meanwhile
        os.write(fd, f"exit {device} {task}\n".encode())
    finally:
        os.close(fd)
    return device


def test_gpu_workers_are_pinned_and_never_share_a_device(sweep_dir: Path, tmp_path: Path) -> None:
    """The GPU layout on CPU: each worker pinned to its device, one task per device at a time.

    Each task writes when it takes its device and when it lets it go to one log: on a device
    the two must alternate (an order of events, whatever the machine's speed)."""
    plan = plan_workers(load_config(sweep_dir / "gpu.ini").monitor)
    log = tmp_path / "devices.log"
    cluster = start_local_cluster(plan.workers, plan.worker_resources, WorkerSetup(1, plan.devices, gpu=True))
    try:
        with Client(cluster, set_as_default=False) as client:
            pinned = client.run(lambda: os.environ["MOSAIC_DEVICE"])
            assert sorted(pinned.values()) == ["cuda:0", "cuda:1"]
            futures = [client.submit(_hold_device, str(log), task, 0.2, pure=False, resources=dict(plan.task_resources))
                       for task in range(6)]
            devices = client.gather(futures)
    finally:
        cluster.close()
    events = [line.split() for line in log.read_text().splitlines()]
    assert sorted(task for kind, _, task in events if kind == "enter") == [str(task) for task in range(6)]
    for device in ("cuda:0", "cuda:1"):
        assert devices.count(device) >= 1
        mine = [(kind, task) for kind, where, task in events if where == device]
        # enter a, exit a, enter b, exit b, ...: never a second task on the device before the first left it
        assert [kind for kind, _ in mine] == ["enter", "exit"] * (len(mine) // 2), (device, mine)
        assert all(mine[i][1] == mine[i + 1][1] for i in range(0, len(mine), 2)), (device, mine)




@pytest.mark.gpu
def test_tiny_sweep_on_real_cuda(sweep_dir: Path, tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    config = sweep_dir / "gpu.ini"
    config.write_text(config.read_text().replace("cuda:0, cuda:1", "cuda:0"))
    summary = run(config, tmp_path / "store")
    assert summary.exit_code == 0
    assert {r["device"] for r in latest_runs(tmp_path / "store")} == {"cuda:0"}
