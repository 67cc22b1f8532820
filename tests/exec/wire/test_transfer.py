"""Run files without a shared disk: the three ways a worker reaches them (mosaic.exec.wire.transfer).

The end of this module runs sweeps on a second machine, emulated: a `dask worker` that cannot
see the driver's study folder. The worker runs in its own mount namespace (``unshare -m``)
with an empty tmpfs mounted over the folder that holds the study (config, class files, store,
run files), so it shares no disk with the driver there, as a worker on another machine would:
the class files travel with the tasks (mosaic.exec.wire.sources), the run files come back
with the results, the scheduler's dashboard and Mosaic's page see every run. Skipped where
mount namespaces are not permitted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from distributed import Client

from mosaic.exec.driver.commands import rerun, run
from mosaic.exec.wire import transfer
from mosaic.exec.wire.events import Event
from mosaic.store.reader import open_reader
from mosaic.store.selection import Selection
from tests.helpers import CLASSES_DRIVER, DASK, TUTORIAL, stop_processes
from tests.helpers.servers import fetch
from tests.helpers.stores import latest_runs


def test_a_worker_that_does_not_see_the_folder_sends_the_files_back(tmp_path: Path) -> None:
    spec = transfer.plan(str(tmp_path / "runs"))
    (tmp_path / "runs" / "checkpoint_5.pt").write_bytes(b"saved")
    # the driver's own process sees its folder: files are written in place
    returned: dict[str, bytes] = {}
    with transfer.workspace(spec, spec.target, 5, True, returned) as folder:
        assert folder == tmp_path / "runs"
    assert returned == {}
    # another machine: a folder of its own, with the checkpoint sent along; every file comes back
    elsewhere = transfer.RunFiles(spec.target, "another-token")
    task = transfer.for_task(elsewhere, 5, resume=True, send=True)
    assert task.carry == {"checkpoint_5.pt": b"saved"}
    with transfer.workspace(task, task.target, 5, True, returned) as folder:
        assert folder != tmp_path / "runs" and (folder / "checkpoint_5.pt").read_bytes() == b"saved"
        (folder / "checkpoint_5.pt").write_bytes(b"trained on")
        (folder / "output_5.log").write_text("log\n")
    assert returned == {"checkpoint_5.pt": b"trained on", "output_5.log": b"log\n"}
    assert not folder.exists()
    assert transfer.for_task(elsewhere, 5, resume=False, send=True).carry == {}
    assert transfer.for_task(elsewhere, 6, resume=True, send=True).carry == {}  # no checkpoint yet


def test_a_url_run_files_path_is_written_by_the_workers(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    """run_files_path = file://...: workers upload there (fsspec) and fetch the checkpoint to rerun."""
    remote = tmp_path / "bucket" / "runs"
    config = sweep_dir / "tiny.ini"
    config.write_text(config.read_text().replace("run_files_path = run_files", f"run_files_path = file://{remote}"))
    store = tmp_path / "store"
    assert run(config, store, client=dask_client).exit_code == 0
    assert sorted(p.name for p in remote.glob("checkpoint_*.pt")) == [f"checkpoint_{i}.pt" for i in (1, 2, 3, 4)]
    assert not (sweep_dir / "run_files").exists() and not (store / "run_files").exists()
    summary = rerun(config, store, Selection(ids="1"), epochs=2, client=dask_client)
    assert summary.exit_code == 0 and summary.run_files == f"file://{remote}"
    with open_reader(store) as reader:
        epochs = {row["run_id"]: row["epochs"] for row in reader.results().to_pylist() if row["run_id"] == 1}
    assert epochs == {1: 3}
    log = (remote / "output_1.log").read_text()
    assert "=== run 1 done: 1 epochs" in log and "=== run 1 done: 3 epochs" in log


# -- a worker that cannot see the study folder ----------------------------------------------------
LOSS = """
import torch

from lossmath import half  # a sibling module no section names: it travels with loss.py


class HalfMSE(torch.nn.Module):
    def forward(self, prediction, target):
        return half(torch.mean((prediction - target) ** 2))
"""


def _unshare_refusal(folder: Path) -> str | None:
    """Why this machine cannot hide a folder from one process (None when it can)."""
    if shutil.which("unshare") is None:
        return "the unshare command is not installed (util-linux)"
    try:
        probe = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs '{folder}' && test ! -e '{folder}/probe'"],
            capture_output=True, text=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -m failed: {exc}"
    if probe.returncode != 0:
        return f"unshare -m / mount tmpfs not permitted here: {probe.stderr.strip() or probe.returncode}"
    return None


@pytest.fixture(scope="module")
def hidden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(scheduler file, hidden folder): a scheduler, and one worker that cannot see the folder."""
    root = tmp_path_factory.mktemp("hidden-worker")
    folder = root / "study-machine"  # what the worker cannot see
    folder.mkdir()
    (folder / "probe").touch()
    refusal = _unshare_refusal(folder)
    if refusal:
        pytest.skip(refusal)
    scheduler_file = root / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    processes = [subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
         "--scheduler-file", scheduler_file],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = f"exec '{DASK}' worker --scheduler-file '{scheduler_file}' --nthreads 1 --name hidden --death-timeout 60"
        processes.append(subprocess.Popen(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs '{folder}' && {worker} --host 127.0.0.1 --no-dashboard"],
            env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        with Client(scheduler_file=str(scheduler_file), timeout="60s") as client:
            client.wait_for_workers(1, timeout=60)
            seen = client.run(os.path.exists, str(folder / "probe"))
        assert list(seen.values()) == [False], "the worker should not see the hidden folder"
        yield scheduler_file, folder
    finally:
        stop_processes(processes)


@pytest.fixture(scope="module")
def study(hidden: tuple[Path, Path]) -> Path:
    """The tiny sweep (4 runs, 1 epoch) with a loss class file that imports a sibling module."""
    target = hidden[1] / "study"
    shutil.copytree(CLASSES_DRIVER, target)
    for name in ("dataset.py", "mlp.py"):
        shutil.copy(TUTORIAL / name, target / name)
    (target / "losses").mkdir()
    (target / "losses" / "loss.py").write_text(LOSS)
    (target / "losses" / "lossmath.py").write_text("def half(value):\n    return 0.5 * value\n")
    config = target / "tiny.ini"
    config.write_text(config.read_text().replace(
        "loss_function = MSELoss", "class_loss_function = HalfMSE\npath_to_class_loss_function = losses/loss.py"
    ).replace("[MONITOR]", "[MONITOR]\nlegacy_history = True"))
    return target


@pytest.fixture(scope="module")
def swept(hidden: tuple[Path, Path], study: Path) -> tuple[Path, list[Event]]:
    """The store and events of one sweep run on the hidden worker (shared by the tests below)."""
    store = hidden[1] / "store"
    address = json.loads(hidden[0].read_text())["address"]
    events: list[Event] = []
    summary = run(study / "tiny.ini", store, scheduler=address, on_event=events.append)
    assert summary.exit_code == 0, [e.text for e in events if e.kind == "finished"]
    return store, events


def test_sweep_on_a_worker_that_cannot_see_the_study(swept: tuple[Path, list[Event]]) -> None:
    """The class files (data, model, loss and the loss file's sibling) travelled with the tasks."""
    runs = latest_runs(swept[0])
    assert [r["status"] for r in runs] == ["done"] * 4
    assert {r["worker"].split(":")[0] for r in runs} == {os.uname().nodename}


def test_remote_scheduler_dashboard_and_mosaic_page(swept: tuple[Path, list[Event]]) -> None:
    """The scheduler's own dashboard link is printed, and its Mosaic page saw every run's epoch."""
    (cluster,) = [e for e in swept[1] if e.kind == "cluster"]
    assert cluster.link and cluster.link.startswith("http://127.0.0.1:") and cluster.link.endswith("/status")
    assert fetch(cluster.link)[0] == 200
    sweep_id = next(e.sweep_id for e in swept[1] if e.kind == "start")
    page = json.loads(fetch(f"{cluster.page}.json?sweep={sweep_id}")[1])
    mine = sorted((r["run"], r["epoch"], r["epochs"], r["state"], r["model"]) for r in page["runs"] if r["sweep"] == sweep_id)
    assert mine == [(run_id, 1, 1, "done", model) for run_id, model in
                    ((1, "mlp_funnel"), (2, "mlp_funnel"), (3, "mlp_brick"), (4, "mlp_brick"))]


def test_run_files_come_back_to_the_driver(study: Path, swept: tuple[Path, list[Event]]) -> None:
    """The worker trained in a folder of its own and sent each run's files back with its result."""
    run_files = study / "run_files"
    for run_id in (1, 2, 3, 4):
        assert (run_files / f"checkpoint_{run_id}.pt").stat().st_size > 0
        assert (run_files / f"history_{run_id}.pt").is_file()
        log = (run_files / f"output_{run_id}.log").read_text()
        assert f"=== run {run_id} attempt 0" in log and f"=== run {run_id} done: 1 epochs" in log


def test_rerun_on_the_hidden_worker_continues_its_runs(hidden: tuple[Path, Path], study: Path, swept: tuple[Path, list[Event]]) -> None:
    """Runs 1 and 2 go from 1 to 3 epochs, from the checkpoints that came back to the driver and
    went out again with the tasks (the worker keeps no run file between runs)."""
    events: list[Event] = []
    summary = rerun(study / "tiny.ini", swept[0], Selection(ids="1-2"), epochs=2, scheduler_file=hidden[0], on_event=events.append)
    assert summary.exit_code == 0
    assert not [e.text for e in events if e.kind == "finished" and "from scratch" in e.text]
    for run_id in (1, 2):  # each log holds both attempts, the driver appended the second
        log = (study / "run_files" / f"output_{run_id}.log").read_text()
        assert f"=== run {run_id} done: 1 epochs" in log and f"=== run {run_id} done: 3 epochs" in log
    epochs = duckdb.sql(
        f"SELECT run_id, max(epoch) FROM read_parquet('{swept[0]}/history/*/*.parquet', hive_partitioning = true) "
        "GROUP BY run_id ORDER BY run_id"
    ).fetchall()
    assert epochs == [(1, 3), (2, 3), (3, 1), (4, 1)]
