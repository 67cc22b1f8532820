"""Where runs execute (mosaic.exec.cluster.connect): the embedded cluster or a remote Dask
scheduler, and the dataset cache every worker is pointed at."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from distributed import Client

from mosaic import cache
from mosaic.config import load_config
from mosaic.errors import UsageError
from mosaic.exec.cluster.connect import cache_settings, open_cluster
from mosaic.exec.driver.commands import run
from tests.helpers import DASK, stop_processes
from tests.helpers import ORIGINAL_EXAMPLES as EXAMPLES
from tests.helpers.stores import latest_runs


def test_cache_folder_is_made_absolute_against_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    config = tmp_path / "examples" / "config.ini"
    config.write_text(config.read_text().replace("CACHE_DIR", "my_cache"))
    monitor = load_config(config).monitor
    monkeypatch.chdir(tmp_path)
    assert cache_settings(monitor) == {"cache_dir": str(tmp_path / "my_cache"), "cache_bytes": 1024**2}


def test_embedded_cluster_workers_get_the_cache(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    config = tmp_path / "examples" / "config.ini"
    config.write_text(config.read_text().replace("CACHE_DIR", str(tmp_path / "cache")))
    cluster = open_cluster(load_config(config).monitor, workers=1)
    try:
        caches = cluster.client.run(lambda: (str(cache.default_cache_dir()), cache._defaults.max_bytes))
    finally:
        cluster.close()
    assert list(caches.values()) == [(str(tmp_path / "cache"), 1024**2)]


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
    address = json.loads(remote.read_text())["address"]
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
