"""Successive halving on a real cluster: the best pipeline survives on half the epochs, the
decisions do not depend on the worker count, a stopped run continues exactly, and a driver
killed mid-sweep resumes to the same decisions."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import mosaic
from mosaic.exec.driver.commands import run
from mosaic.exec.wire.events import Event
from mosaic.store.status import RunStatus
from tests.helpers import CLASSES_DRIVER
from tests.helpers.drivers import DEADLINE_S, driver, mosaic_cli, wait_for
from tests.helpers.servers import fetch

CONFIG = """[PROCESS]
lr = 5e-2
epochs = {epochs}
loss_function = MSELoss
data_scheme = dataset
pipeline_scheme = mlp
run_files_path = files_{name}
seed = 11
checkpoint_every = 1

[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = {workers}
multiplicity = 2
cache_database_path = cache
cache_size = 10M

[SEARCH]
strategy = {strategy}
reduction_factor = {factor}
min_epochs = 1

[dataset_OR]
type = dataset
class = {dataset}
path_to_class = {dataset_file}
batch_size = 8
data_size = 40
train_prop = 0.8
key = OR

[mlp_handicap]
type = mlp
class = mlp_handicap
path_to_class = ./handicap.py
key = h{{handicap}}
width = 3
handicap = {handicaps}
"""


def _config(folder: Path, name: str, *, epochs: int = 9, factor: int = 3, workers: int = 2, strategy: str = "halving",
            handicaps: str = "{0-5}", gate: Path | None = None, gate_after: int = 0) -> Path:
    """Six pipelines (h0 best ... h5 worst) x 2 replicates, run files of their own;
    ``gate``: the runs built after the first ``gate_after`` wait before their first epoch."""
    text = CONFIG.format(name=Path(name).stem, epochs=epochs, factor=factor, workers=workers, strategy=strategy, handicaps=handicaps,
                         dataset="dataset_gated_after" if gate else "dataset_OR",
                         dataset_file="./gated.py" if gate else "./dataset.py")
    if gate is not None:
        text = text.replace("key = OR\n", f"key = OR\ngate = {gate}\nafter = {gate_after}\n")
    (folder / name).write_text(text)
    return folder / name


def _decisions(store: Path) -> list[tuple[Any, ...]]:
    with mosaic.open_store(store) as session:
        return session.fetch("SELECT dataset, model, rung, runs, kept, rank, value FROM decisions ORDER BY rung, rank")


def _epochs(store: Path) -> dict[int, int]:
    with mosaic.open_store(store) as session:
        return dict(session.fetch("SELECT run_id, count(*) FROM history GROUP BY run_id"))


def _statuses(store: Path) -> dict[int, str]:
    with mosaic.open_store(store) as session:
        return dict(session.fetch("SELECT run_id, status FROM runs"))


def test_the_best_pipeline_survives_on_at_most_half_the_epochs(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    shutil.copy(CLASSES_DRIVER / "handicap.py", sweep_dir)
    store = tmp_path / "store"
    summary = run(_config(sweep_dir, "h.ini"), store, dask_client)
    assert summary.exit_code == 0  # stopped runs are not failures
    statuses = _statuses(store)
    assert sorted(statuses) == list(range(1, 13))
    # h0 (runs 1-2) trained to the end; everything else was stopped
    assert {r for r, s in statuses.items() if s == RunStatus.DONE} == {1, 2}
    assert {r for r, s in statuses.items() if s == RunStatus.STOPPED} == set(range(3, 13))
    epochs = _epochs(store)
    assert epochs[1] == epochs[2] == 9
    # each task went on from the last rung's checkpoint: 1, then 2 more, then 6 (never from scratch)
    log = (sweep_dir / "files_h" / "output_1.log").read_text()
    assert "training epochs 2..3 (the checkpoint held 1)" in log and "training epochs 4..9 (the checkpoint held 3)" in log
    assert sum(epochs.values()) <= 12 * 9 / 2, epochs
    # rung 1: six pipelines, the best two kept; rung 3: two, the best one kept; replicates together
    decisions = _decisions(store)
    assert [(m, rung, runs, kept) for _, m, rung, runs, kept, _, _ in decisions] == [
        ("h0", 1, "1,2", True), ("h1", 1, "3,4", True), ("h2", 1, "5,6", False), ("h3", 1, "7,8", False),
        ("h4", 1, "9,10", False), ("h5", 1, "11,12", False), ("h0", 3, "1,2", True), ("h1", 3, "3,4", False),
    ]
    # the stopped runs keep their history to the rung, and say where and why they stopped
    assert epochs[3] == 3 and epochs[5] == 1
    with mosaic.open_store(store) as session:
        text = session.fetch("SELECT return_status FROM runs WHERE run_id = 5")[0][0]
    assert text.startswith("stopped at epoch 1: rank 3 of 6")
    assert "stopped" in mosaic.status(store).render()
    # the verdict compares the runs trained to the end, and says how many a search stopped
    assert mosaic.verdict(store).left_out["runs a search stopped"] == 10


def test_the_live_page_shows_the_stops_and_the_decisions(sweep_dir: Path, tmp_path: Path) -> None:
    shutil.copy(CLASSES_DRIVER / "handicap.py", sweep_dir)
    seen: dict[str, Any] = {}

    def summary() -> dict[str, Any]:
        return dict(json.loads(fetch(seen["page"] + "/summary.json")[1]))

    def on_event(event: Event) -> None:  # the sweep waits for this callback: its page is up
        if event.kind == "cluster":
            seen["page"] = event.page
        elif event.kind == "finished" and event.run_id == 1:  # h0's runs end last (they are never cut)
            deadline = time.monotonic() + DEADLINE_S
            while summary()["header"]["counts"].get("stopped") != 10 and time.monotonic() < deadline:
                time.sleep(0.1)
            seen["summary"] = summary()

    run(_config(sweep_dir, "p.ini", handicaps="{0-5}"), tmp_path / "store", on_event=on_event)
    assert seen["summary"]["header"]["counts"]["stopped"] == 10
    decisions = seen["summary"]["decisions"]
    assert decisions["total"] == 8 and {(d["model"], d["rung"], d["kept"]) for d in decisions["rows"]} >= {("h0", 3, True), ("h1", 3, False)}


def test_the_same_decisions_with_one_worker_or_two(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    shutil.copy(CLASSES_DRIVER / "handicap.py", sweep_dir)
    one = run(_config(sweep_dir, "one.ini", workers=1, factor=2), tmp_path / "one", workers=1)
    two = run(_config(sweep_dir, "two.ini", factor=2), tmp_path / "two", dask_client)
    assert one.counts == two.counts
    assert _decisions(tmp_path / "one") == _decisions(tmp_path / "two")
    assert _epochs(tmp_path / "one") == _epochs(tmp_path / "two")


def test_a_stopped_run_continued_matches_the_run_trained_straight(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    shutil.copy(CLASSES_DRIVER / "handicap.py", sweep_dir)
    halving, grid = tmp_path / "halving", tmp_path / "grid"
    run(_config(sweep_dir, "h.ini", handicaps="0, 1, 2"), halving, dask_client)
    run(_config(sweep_dir, "g.ini", handicaps="0, 1, 2", strategy="grid"), grid, dask_client)
    assert _statuses(halving)[5] == RunStatus.STOPPED and _epochs(halving)[5] == 1
    promoted = mosaic.promote(halving, mosaic.Selection(ids="5"), client=dask_client)
    assert promoted.counts == {"done": 1}
    query = "SELECT epoch, train_loss, test_loss FROM history WHERE run_id = 5 ORDER BY epoch"
    with mosaic.open_store(halving) as a, mosaic.open_store(grid) as b:
        continued, straight = a.fetch(query), b.fetch(query)
    assert len(continued) == 9 and continued == straight  # bitwise, on CPU
    survivor = "SELECT epoch, train_loss, test_loss FROM history WHERE run_id = 1 ORDER BY epoch"
    with mosaic.open_store(halving) as a, mosaic.open_store(grid) as b:
        assert a.fetch(survivor) == b.fetch(survivor)  # trained rung by rung, the same as straight through
    refused = mosaic_cli("promote", halving, "-id", "1")
    assert refused.returncode == 2 and "only stopped runs can be promoted; not stopped: 1 (done)" in refused.stderr


def test_kill_9_mid_sweep_then_resume_reaches_the_same_decisions(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    """Rungs 1, 2 and 4 of 8 epochs (factor 2), four pipelines of two runs: 8 runs are built
    for rung 1, 4 for rung 2; the 2 built for rung 4 wait at the gate. The driver is killed
    there, after two cuts, and the sweep resumed."""
    shutil.copy(CLASSES_DRIVER / "handicap.py", sweep_dir)
    straight = tmp_path / "straight"
    run(_config(sweep_dir, "s.ini", epochs=8, factor=2, handicaps="{0-3}"), straight, dask_client)
    store, gate = tmp_path / "store", tmp_path / "gate"
    gate.mkdir()
    config = _config(sweep_dir, "k.ini", epochs=8, factor=2, handicaps="{0-3}", gate=gate, gate_after=12)
    with driver("run", config, store, "--no-progress") as process:
        wait_for(lambda: len(list(gate.glob("waiting-*"))) >= 2 and _count_decisions(store) == 6,
                 "the survivors of rung 2 waiting at the gate", process)
        process.kill()
    assert _count_decisions(store) == 6 and RunStatus.DONE not in _statuses(store).values()
    (gate / "open").touch()
    resumed = mosaic_cli("resume", store, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert _decisions(store) == _decisions(straight)
    assert _statuses(store) == _statuses(straight)
    assert _epochs(store) == _epochs(straight)


def _count_decisions(store: Path) -> int:
    try:
        with mosaic.open_store(store) as session:
            return int(session.fetch("SELECT count(*) FROM decisions")[0][0])
    except Exception:  # noqa: BLE001 - the store's first files are being written
        return 0
