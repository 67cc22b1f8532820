"""The runs-row ledger (mosaic.exec.driver.ledger) on a real store: it writes every status a
run takes, and never lets a later update overwrite a run's final status."""

from __future__ import annotations

from pathlib import Path

import pytest

import mosaic
from mosaic.exec.driver.ledger import OPEN, RunLedger
from mosaic.exec.wire.task import run_seed
from mosaic.store.reader import open_reader
from mosaic.store.records import PlannedRun, SweepRecords
from mosaic.store.status import RunStatus
from mosaic.store.writer import Store, now

FINAL = [RunStatus.DONE, RunStatus.ERROR, RunStatus.SYSTEM_FAILURE, RunStatus.PAUSED, RunStatus.INTERRUPTED, RunStatus.STOPPED]


def _sweep(tmp_path: Path, count: int = 3) -> tuple[RunLedger, list[PlannedRun]]:
    """A ledger on a fresh store, with ``count`` runs of the tutorial planned, as a sweep plans them."""
    config = mosaic.load_config(mosaic.init(tmp_path / "tutorial"))
    store = Store(tmp_path / "s", create=True)
    sweep_id = store.new_sweep_id()
    records = SweepRecords(store, sweep_id, "run", config, now(), seed=lambda run_id: run_seed(7, run_id))
    records.write_sweep_row(ended=False)
    pipelines = mosaic.generate(config)[:count]
    epochs = config.process.epochs
    runs = [PlannedRun(i, 0, p, epochs, total=epochs)
            for i, p in zip(store.allocate_run_ids(count), pipelines, strict=True)]
    ledger = RunLedger(records)
    ledger.plan(runs, new_params=True)
    return ledger, runs


def _latest(ledger: RunLedger) -> dict[int, str]:
    """Each run's status as a reader of the store sees it (its latest row)."""
    ledger.records.flush()
    with open_reader(ledger.records.store.path) as reader:
        return {int(r["run_id"]): r["status"] for r in reader.latest_runs()}


def _rows(ledger: RunLedger, run_id: int) -> list[str]:
    """Every runs row of ``run_id`` in the store, oldest first."""
    with mosaic.open_store(ledger.records.store.path) as session:
        return [s for (s,) in session.fetch(f"SELECT status FROM runs_all WHERE run_id = {run_id} ORDER BY time")]


def test_plan_writes_every_run_pending_with_its_params(tmp_path: Path) -> None:
    ledger, runs = _sweep(tmp_path)
    assert ledger.records.buffer["runs"] == []  # planned rows go straight to the store
    assert _latest(ledger) == {r.run_id: "pending" for r in runs}
    with open_reader(ledger.records.store.path) as reader:
        assert set(reader.params(names=["pipeline"]).column("run_id").to_pylist()) == {r.run_id for r in runs}
        seeds = dict(zip(*reader.runs().select(["run_id", "seed"]).to_pydict().values(), strict=True))
    assert seeds == {r.run_id: run_seed(7, r.run_id) for r in runs}
    assert all(ledger.status_of(r.run_id) is RunStatus.PENDING and not ledger.is_final(r.run_id) for r in runs)


def test_running_then_done_are_both_written(tmp_path: Path) -> None:
    ledger, runs = _sweep(tmp_path)
    first = runs[0]
    assert ledger.update(first, RunStatus.RUNNING, worker="w1", device="cpu")
    assert not ledger.is_final(first.run_id) and ledger.status_of(first.run_id) is RunStatus.PENDING
    assert ledger.update(first, RunStatus.DONE, worker="w1", device="cpu", return_status="ok")
    rows = ledger.records.buffer["runs"]
    assert [(r["run_id"], r["status"], r["worker"]) for r in rows] == [(first.run_id, "running", "w1"),
                                                                         (first.run_id, "done", "w1")]
    assert rows[0]["planned_epochs"] == first.total and rows[0]["seed"] == run_seed(7, first.run_id)
    assert ledger.is_final(first.run_id) and ledger.status_of(first.run_id) is RunStatus.DONE
    latest = _latest(ledger)
    assert latest[first.run_id] == "done"
    assert {latest[r.run_id] for r in runs[1:]} == {"pending"}
    assert _rows(ledger, first.run_id) == ["pending", "running", "done"]


def test_a_run_may_start_more_than_once(tmp_path: Path) -> None:
    ledger, runs = _sweep(tmp_path, count=1)
    assert ledger.update(runs[0], RunStatus.RUNNING)
    assert ledger.update(runs[0], RunStatus.RUNNING)  # submitted again after its worker died
    assert ledger.update(runs[0], RunStatus.SYSTEM_FAILURE, error="worker died")
    assert [r["status"] for r in ledger.records.buffer["runs"]] == ["running", "running", "system failure"]


@pytest.mark.parametrize("final", FINAL, ids=str)
def test_a_final_status_is_never_overwritten(tmp_path: Path, final: RunStatus) -> None:
    ledger, runs = _sweep(tmp_path)
    run, other = runs[0], runs[1]
    assert ledger.update(run, RunStatus.RUNNING)
    assert ledger.update(run, final, error="boom" if final is RunStatus.ERROR else None)
    rows = list(ledger.records.buffer["runs"])
    for later in (RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.DONE, RunStatus.PENDING):
        assert ledger.update(run, later) is False, later
    assert ledger.records.buffer["runs"] == rows  # nothing added
    assert ledger.status_of(run.run_id) is final
    # the other runs are not affected
    assert ledger.update(other, RunStatus.INTERRUPTED)
    assert ledger.status_of(other.run_id) is RunStatus.INTERRUPTED
    latest = _latest(ledger)
    assert latest[run.run_id] == final.value
    assert latest[other.run_id] == "interrupted"
    assert _rows(ledger, run.run_id) == ["pending", "running", final.value]


@pytest.mark.parametrize("final", FINAL, ids=str)
def test_a_final_status_holds_after_a_flush_too(tmp_path: Path, final: RunStatus) -> None:
    ledger, runs = _sweep(tmp_path, count=1)
    assert ledger.update(runs[0], final)
    assert _latest(ledger) == {runs[0].run_id: final.value}
    assert not ledger.update(runs[0], RunStatus.RUNNING)
    assert ledger.records.buffer["runs"] == []
    assert _latest(ledger) == {runs[0].run_id: final.value}


def test_status_of_a_run_never_updated_is_pending(tmp_path: Path) -> None:
    ledger, _ = _sweep(tmp_path, count=1)
    assert ledger.status_of(12345) is RunStatus.PENDING


def test_only_pending_and_running_are_open() -> None:
    assert set(OPEN) == {RunStatus.PENDING, RunStatus.RUNNING}
    assert set(FINAL) | set(OPEN) == set(RunStatus)
