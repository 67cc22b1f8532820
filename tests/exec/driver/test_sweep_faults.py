"""Fault injection on real processes: whatever dies, every planned run ends recorded once.

Each test ends by checking the store as a whole (:func:`check_store`): every Parquet file
readable, every planned run recorded once with the expected latest status, run ids unique,
and each done run's history holding epochs 1..N exactly once. Drivers are real ``mosaic``
subprocesses killed with SIGKILL; workers are real Dask worker processes killed the same way.
Every wait polls with a deadline.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import mosaic
from mosaic.errors import UsageError
from mosaic.exec.driver.commands import run
from mosaic.exec.driver.ledger import RunLedger
from mosaic.exec.driver.status import status
from mosaic.exec.driver.sweep import Sweep
from mosaic.exec.wire.events import Event, RunEvent
from mosaic.store.layout import is_store
from mosaic.store.records import PlannedRun, SweepRecords
from mosaic.store.writer import Store, now
from tests.helpers.drivers import DEADLINE_S, driver, mosaic_cli, wait_for
from tests.helpers.stores import parquet_rows

CONFIG = """[PROCESS]
lr = 1e-2
epochs = {epochs}
loss_function = MSELoss
data_scheme = dataset
pipeline_scheme = mlp
run_files_path = run_files
seed = 3
{extra}
[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = 2
multiplicity = {multiplicity}
cache_database_path = cache
cache_size = 10M

[dataset_OR]
type = dataset
class = dataset_OR
path_to_class = ./dataset.py
batch_size = 8
data_size = {data_size}
train_prop = 0.8
key = {{class}}

[mlp_brick]
type = mlp
class = mlp_brick
path_to_class = ./mlp.py
key = mlp_brick
length = 1
width = {widths}
"""

FAULTS = """
[mlp_fail]
type = mlp
class = mlp_fail
path_to_class = ./failing.py
key = mlp_fail
width = {2-3}

[mlp_kill]
type = mlp
class = mlp_kill
path_to_class = ./killer.py
key = mlp_kill
width = {2-3}
"""


def write_config(folder: Path, name: str, *, epochs: int = 2, widths: str = "{2-3}", multiplicity: int = 1,
                 data_size: int = 40, extra: str = "", faults: bool = False, gate: Path | None = None) -> Path:
    """A config in ``folder`` (a ``sweep_dir``); ``gate``: its runs stop before their third epoch
    until the test lets them through (the gated dataset of tests/data/classes_driver/gated.py)."""
    text = CONFIG.format(epochs=epochs, widths=widths, multiplicity=multiplicity, data_size=data_size, extra=extra)
    if gate is not None:
        text = text.replace("class = dataset_OR\npath_to_class = ./dataset.py",
                            f"class = dataset_gated\npath_to_class = ./gated.py\ngate = {gate}")
    path = folder / name
    path.write_text(text + (FAULTS if faults else ""))
    return path


def check_store(store: Path, statuses: dict[str, int], epochs: int) -> dict[int, str]:
    """The store-wide invariants; returns run id -> latest status."""
    for file in sorted(store.rglob("*.parquet")):
        pq.read_table(file)  # every file readable
    with mosaic.open_store(store) as session:
        latest = dict(session.fetch("SELECT run_id, status FROM runs"))
        rows = session.fetch("SELECT run_id, count(*) FROM runs GROUP BY run_id HAVING count(*) > 1")
        history = dict(session.fetch("SELECT run_id, list(epoch ORDER BY epoch) FROM history GROUP BY run_id"))
        results = session.fetch("SELECT run_id, count(*) FROM run_results GROUP BY run_id")
        next_id = session.fetch("SELECT param_value FROM system")[0][0]
    assert not rows
    total = sum(statuses.values())
    assert sorted(latest) == list(range(1, total + 1)) and next_id == total + 1
    assert collections.Counter(latest.values()) == statuses, latest
    done = sorted(r for r, s in latest.items() if s == "done")
    assert sorted(history) == done and all(history[r] == list(range(1, epochs + 1)) for r in done), history
    assert sorted(r for r, _ in results) == done and all(n == 1 for _, n in results)
    return latest


def statuses_now(store: Path) -> collections.Counter:
    if not is_store(store) or not (store / "runs").exists():
        return collections.Counter()
    try:
        return collections.Counter(r.status for r in status(store).runs)
    except Exception:  # noqa: BLE001 - a first file being written
        return collections.Counter()


def test_six_runs_two_raising_two_exiting_record_2_2_2(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    config = write_config(sweep_dir, "faults.ini", epochs=1, faults=True)
    for rep in range(2):
        store = tmp_path / f"store{rep}"
        summary = run(config, store, dask_client)
        assert summary.counts == {"done": 2, "error": 2, "system failure": 2}
        latest = check_store(store, {"done": 2, "error": 2, "system failure": 2}, epochs=1)
        with mosaic.open_store(store) as session:
            errors = dict(session.fetch("SELECT run_id, error FROM runs WHERE status <> 'done'"))
        for run_id, text in errors.items():
            if latest[run_id] == "error":
                assert "RuntimeError: deliberate failure in forward" in text and "NoneType: None" not in text
            else:
                assert re.search(r"worker process died while running it \(worker \S+:\d+;", text), text
        dask_client.wait_for_workers(2, timeout=60)


def test_in_a_batch_only_the_run_that_kills_its_worker_is_blamed(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    # runs 1-2 train, 3-4 raise, 5-6 exit their worker; batches [1 2 3] and [4 5 6]: when run 5
    # kills the worker, run 4 had ended (run again: error again); 5 and 6 run again alone, each
    # kills a worker in turn and is blamed; no other run is
    config = write_config(sweep_dir, "faults.ini", epochs=1, faults=True,
                          extra="").read_text().replace("cache_size = 10M", "cache_size = 10M\nruns_per_task = 3")
    (sweep_dir / "batched.ini").write_text(config)
    summary = run(sweep_dir / "batched.ini", tmp_path / "store", dask_client)
    assert summary.counts == {"done": 2, "error": 2, "system failure": 2}
    latest = check_store(tmp_path / "store", {"done": 2, "error": 2, "system failure": 2}, epochs=1)
    assert latest == {1: "done", 2: "done", 3: "error", 4: "error", 5: "system failure", 6: "system failure"}
    dask_client.wait_for_workers(2, timeout=60)


def test_failing_and_killing_classes_fail_only_their_runs(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    summary = run(sweep_dir / "faulty.ini", store, dask_client)

    assert summary.exit_code == 1
    by_id = {r["run_id"]: r for r in parquet_rows(store, "runs")}
    assert [by_id[i]["status"] for i in (1, 2, 3, 4)] == ["done", "done", "error", "system failure"]
    assert "deliberate failure in forward" in by_id[3]["error"]
    assert "Traceback" in by_id[3]["return_status"]
    assert "worker process died" in by_id[4]["error"]
    assert "deliberate failure in forward" in (sweep_dir / "run_files" / "output_3.log").read_text()
    assert {r["run_id"] for r in parquet_rows(store, "results")} == {1, 2}
    assert summary.failed == [3, 4]
    report = mosaic.status(store).render()
    assert "\t[3] dataset_OR(4,40,0.8) | mlp_fail(2)\n\t\tRuntimeError: deliberate failure in forward" in report
    assert "(system failure)" in report
    # the killed worker was replaced: the cluster still runs both workers
    dask_client.wait_for_workers(2, timeout=60)


def test_kill_driver_before_the_first_task_then_resume(sweep_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = write_config(sweep_dir, "c.ini", epochs=3, widths="{2-5}")
    with driver("run", config, store, "--no-progress") as process:
        # the planned runs are the first runs file; the first 'running' rows come a flush (1 s) later
        wait_for(lambda: any(store.glob("runs/sweep=1/*.parquet")), "the pending runs", process, poll=0.005)
        process.kill()
    assert sum(statuses_now(store).values()) == 4 and not statuses_now(store).get("done")
    resumed = mosaic_cli("resume", store, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    check_store(store, {"done": 4}, epochs=3)


def test_kill_driver_mid_sweep_then_resume_trains_to_the_planned_epochs(sweep_dir: Path, tmp_path: Path) -> None:
    """Two runs go through the gate and finish; every other run stops at it (before its third
    epoch, checkpointed) until the driver is killed: the kill always comes mid-sweep."""
    store = tmp_path / "store"
    gate = tmp_path / "gate"
    gate.mkdir()
    for ticket in range(2):
        (gate / f"pass-{ticket}").touch()
    config = write_config(sweep_dir, "c.ini", epochs=4, widths="{2-4}", multiplicity=4, gate=gate,
                          extra="checkpoint_every = 1\n")
    with driver("run", config, store, "--no-progress") as process:
        wait_for(lambda: statuses_now(store).get("done", 0) >= 2, "two runs done", process)
        wait_for(lambda: any(gate.glob("waiting-*")), "a run waiting at the gate", process)
        with pytest.raises(UsageError, match=r"sweep 1 \(driver pid \d+ on .*\) still owns runs"):
            mosaic.resume(store)  # refused before anything starts while the live driver owns them all
        process.kill()
    assert statuses_now(store).get("done", 0) == 2  # < 12: only the two runs with a pass finished
    (gate / "open").touch()  # the resumed runs go through
    resumed = mosaic_cli("resume", store, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    check_store(store, {"done": 12}, epochs=4)
    with mosaic.open_store(store) as session:
        planned = session.fetch("SELECT DISTINCT planned_epochs FROM runs")
        attempts = dict(session.fetch("SELECT attempt, count(*) FROM runs GROUP BY attempt"))
    assert planned == [(4,)] and sum(attempts.values()) == 12 and attempts.get(1, 0) >= 1


def test_kill_driver_during_compaction_then_resume(sweep_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = write_config(sweep_dir, "c.ini", epochs=1, widths="{2-5}")

    def mid_compaction() -> bool:
        return any(store.glob("*/sweep=1/*-c.parquet"))

    with driver("run", config, store, "--no-progress", env={"MOSAIC_TEST_COMPACT_PAUSE_S": "60"}) as process:
        wait_for(mid_compaction, "a compaction", process)
        process.kill()
    merged = next(store.glob("*/sweep=1/*-c.parquet")).parent
    assert len(list(merged.glob("*.parquet"))) > 1  # killed between writing the merged file and deleting
    check_store(store, {"done": 4}, epochs=1)
    resumed = mosaic_cli("resume", store, "--no-progress")
    assert resumed.returncode == 0 and "nothing to do" in resumed.stdout, resumed.stderr
    check_store(store, {"done": 4}, epochs=1)
    left = {str(p.relative_to(store)): sorted(f.name for f in p.glob("*.parquet")) for p in store.glob("*/sweep=*")}
    assert all(len(files) == 1 for files in left.values()), left


def test_a_worker_killed_right_after_it_finished_a_run(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    # two runs on two workers; loaded before the killer thread starts polling the scheduler
    config = mosaic.load_config(write_config(sweep_dir, "c.ini", epochs=2, widths="2, 3"))
    pids = dask_client.run(os.getpid)
    killed: list[int] = []

    def killer() -> None:  # the first worker holding a finished run and running nothing else
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline and not killed:
            holders = dask_client.run_on_scheduler(_finished_run_holders)
            if holders:
                os.kill(pids[holders[0]], signal.SIGKILL)
                killed.append(pids[holders[0]])
                return
            time.sleep(0.002)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    summary = run(config, store, dask_client)
    thread.join(timeout=DEADLINE_S)
    assert killed and summary.counts == {"done": 2}
    check_store(store, {"done": 2}, epochs=2)
    dask_client.wait_for_workers(2, timeout=60)


def _finished_run_holders(dask_scheduler: Any) -> list[str]:
    """(On the scheduler) workers holding a finished run's result and processing nothing."""
    return [ws.address for ts in dask_scheduler.tasks.values()
            if str(ts.key).startswith("run-") and ts.state == "memory" for ws in ts.who_has if not ws.processing]


def test_a_result_lost_with_its_worker_is_collected_again(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    """The known bug, made deterministic: a finished task whose worker then dies is neither
    finished nor cancelled; the driver runs it again and records no error."""
    marker = tmp_path / "computed"
    future = dask_client.submit(_once_then_slow, str(marker), pure=False)
    wait_for(lambda: future.status == "finished", "the task")
    (address,) = dask_client.who_has(future)[future.key]
    pid = dask_client.run(os.getpid, workers=[address])[address]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: future.status not in ("finished",), "the scheduler to notice the lost result")
    assert future.status in ("pending", "lost")

    store = Store(tmp_path / "store", create=True)
    events: list[Event] = []
    sweep = Sweep(store, "run", mosaic.load_config(write_config(sweep_dir, "c.ini")), events.append)
    sweep.sweep_id = store.new_sweep_id()
    sweep.records = SweepRecords(store, sweep.sweep_id, "run", sweep.config, now(), seed=lambda run_id: 1)
    sweep.ledger = RunLedger(sweep.records)
    sweep.starts.seen[1] = RunEvent.start(1, "a-task", "somehost:4242", "cpu")
    planned = PlannedRun(1, 0, [], 2, total=2)
    assert sweep._collect(future, [planned]) == [planned]
    future.release()
    assert not sweep.records.buffer.get("runs") and sweep.policy.lost == {1}
    assert "lost with worker somehost:4242" in events[-1].text
    task = sweep._task(planned)
    assert task.resume and task.until == 2  # continues from its checkpoint to the planned total
    dask_client.wait_for_workers(2, timeout=60)


def _once_then_slow(marker: str) -> int:
    """Returns at once the first time; a recomputation (after its worker died) takes a while."""
    if os.path.exists(marker):
        time.sleep(8)
    else:
        Path(marker).touch()
    return 1


def test_two_sweeps_a_query_loop_and_compact_at_once(sweep_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    Store(store, create=True)
    config = write_config(sweep_dir, "c.ini", epochs=2, widths="{2-5}")
    failures: list[str] = []
    queries = [0]
    stop = threading.Event()

    def query_loop() -> None:
        while not stop.is_set():
            try:
                with mosaic.open_store(store) as session:
                    session.fetch("SELECT count(*) FROM runs")
                    session.fetch("SELECT count(*) FROM history")
                queries[0] += 1
            except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                failures.append(f"{type(exc).__name__}: {exc}")
            stop.wait(0.2)

    thread = threading.Thread(target=query_loop, daemon=True)
    thread.start()
    try:
        args = ("run", config, store, "--no-progress", "--workers", "1")
        with driver(*args) as first, driver(*args) as second:
            deadline = time.monotonic() + DEADLINE_S
            while (first.poll() is None or second.poll() is None) and time.monotonic() < deadline:
                compacted = mosaic_cli("compact", store)
                assert compacted.returncode == 0, compacted.stderr
            first.wait(timeout=DEADLINE_S)
            second.wait(timeout=DEADLINE_S)
            assert (first.returncode, second.returncode) == (0, 0)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not failures and queries[0] > 5
    check_store(store, {"done": 8}, epochs=2)


