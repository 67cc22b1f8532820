"""Worker layout and GPU placement (checked on CPU), and sweeps on a real remote scheduler."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import duckdb
import psutil
import pytest
from distributed import Client

from mosaic import cache
from mosaic.config import load_config
from mosaic.errors import RunError, UsageError
from mosaic.exec.cluster import worker_start
from mosaic.exec.cluster.connect import open_cluster
from mosaic.exec.cluster.local import start_local_cluster
from mosaic.exec.cluster.plugins import WorkerSetup
from mosaic.exec.cluster.workers import check_gpu, device_for, plan_workers
from mosaic.exec.driver.commands import run
from tests.helpers import stop_processes

DASK = Path(sys.executable).parent / "dask"


def latest_runs(store: Path) -> list[dict[str, Any]]:
    return duckdb.sql(
        f"SELECT run_id, status, worker, device FROM read_parquet('{store}/runs/*/*.parquet', hive_partitioning = true) "
        "QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY time DESC) = 1 ORDER BY run_id"
    ).to_arrow_table().to_pylist()


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


def _hold_device(seconds: float) -> tuple[str, float, float]:
    start = time.time()
    time.sleep(seconds)
    return os.environ["MOSAIC_DEVICE"], start, time.time()


def test_gpu_workers_are_pinned_and_never_share_a_device(sweep_dir: Path) -> None:
    """The GPU layout on CPU: each worker pinned to its device, one task per device at a time."""
    plan = plan_workers(load_config(sweep_dir / "gpu.ini").monitor)
    cluster = start_local_cluster(plan.workers, plan.worker_resources, WorkerSetup(1, plan.devices, gpu=True))
    try:
        with Client(cluster, set_as_default=False) as client:
            pinned = client.run(lambda: os.environ["MOSAIC_DEVICE"])
            assert sorted(pinned.values()) == ["cuda:0", "cuda:1"]
            futures = [client.submit(_hold_device, 0.2, pure=False, resources=dict(plan.task_resources)) for _ in range(6)]
            spans = client.gather(futures)
    finally:
        cluster.close()
    for device in ("cuda:0", "cuda:1"):
        mine = sorted((start, end) for d, start, end in spans if d == device)
        assert len(mine) >= 1
        assert all(later[0] >= earlier[1] for earlier, later in zip(mine, mine[1:], strict=False)), device


# -- how local workers start ---------------------------------------------------------------
def _native_cpu_after_blas() -> float:
    """CPU seconds of this process's non-Python threads after some numpy BLAS work: an
    OpenBLAS pool (started in the fork server without Dask's one-thread environment) does it."""
    import threading

    import numpy as np

    square = np.ones((600, 600))
    for _ in range(8):
        square @ square
    python = {t.native_id for t in threading.enumerate()}
    return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id not in python)


def _process_facts() -> dict[str, Any]:
    import torch

    return {
        "parent": os.getppid(),
        "late": os.environ.get("MOSAIC_TEST_LATE"),
        "torch_threads": torch.get_num_threads(),
        "native_cpu": _native_cpu_after_blas(),
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers fork from a server on Linux only")
def test_cpu_workers_are_forked_from_one_preloaded_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local CPU workers fork from multiprocessing's fork server (torch imported there once),
    which started with Dask's pre-spawn environment; each still sees the driver's environment
    as it is when the cluster starts, as a spawned worker would."""
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
    assert max(f["native_cpu"] for f in facts) < 0.02, facts


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


# -- a remote cluster: `dask scheduler` + two `dask worker` processes ---------------------------
@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scheduler and two one-thread workers on 127.0.0.1; the second advertises a GPU."""
    folder = tmp_path_factory.mktemp("remote")
    scheduler_file = folder / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    processes = [subprocess.Popen(
        [DASK, "scheduler", "--port", "0", "--scheduler-file", scheduler_file, *common],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        worker = [DASK, "worker", "--scheduler-file", scheduler_file, "--nthreads", "1", *common]
        processes.append(subprocess.Popen(worker + ["--name", "cpu-worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        processes.append(subprocess.Popen(
            worker + ["--name", "gpu-worker", "--resources", "GPU=1"],
            env={**env, "MOSAIC_DEVICE": "cpu"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        with Client(scheduler_file=str(scheduler_file), timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        yield scheduler_file
    finally:
        stop_processes(processes)


def test_sweep_on_a_remote_scheduler(remote: Path, sweep_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    summary = run(sweep_dir / "tiny.ini", store, scheduler_file=remote)
    assert summary.exit_code == 0
    runs = latest_runs(store)
    assert [r["status"] for r in runs] == ["done"] * 4
    results = duckdb.sql(f"SELECT count(*) FROM read_parquet('{store}/results/*/*.parquet')").fetchall()
    assert results == [(4,)]
    # remote workers got the sweep's dataset cache too (MONITOR cache_database_path, cache_size = 10M)
    with Client(scheduler_file=str(remote), set_as_default=False) as client:
        caches = client.run(lambda: (str(cache.default_cache_dir()), cache._defaults.max_bytes))
    assert set(caches.values()) == {(str(Path.cwd() / "cache"), 10 * 1024**2)}


def test_need_gpu_runs_go_to_workers_advertising_a_gpu(remote: Path, sweep_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    address = __import__("json").loads(remote.read_text())["address"]
    summary = run(sweep_dir / "gpu.ini", store, scheduler=address)
    assert summary.exit_code == 0
    runs = latest_runs(store)
    assert len(runs) == 4 and len({r["worker"] for r in runs}) == 1  # all on the GPU worker
    with Client(address, set_as_default=False) as client:
        gpu_pid = [pid for name, pid in client.run(os.getpid).items()
                   if client.scheduler_info()["workers"][name]["resources"].get("GPU")]
    assert runs[0]["worker"].endswith(f":{gpu_pid[0]}")


def test_missing_scheduler_file_is_a_usage_error(sweep_dir: Path, tmp_path: Path) -> None:
    monitor = load_config(sweep_dir / "tiny.ini").monitor
    with pytest.raises(UsageError, match="file not found"):
        open_cluster(monitor, scheduler_file=tmp_path / "nope.json")


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
