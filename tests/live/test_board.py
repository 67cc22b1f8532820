"""The live view's aggregation model (mosaic.live.board): a plan, then runs' starts, epochs and
ends, kept as running totals; memory bounded per run."""

from __future__ import annotations

import gc
import tracemalloc
from types import SimpleNamespace

from mosaic.live.board import UNKNOWN, Board, Plan
from mosaic.store.status import RunStatus
from mosaic.sweep import dataset_and_model
from tests.helpers.live import board_of, planned


def test_a_plan_names_runs_by_the_one_rule_and_compresses_replicates() -> None:
    runs = planned(2, 3, 4)
    plan = Plan.of(3, "ab12cd34", runs, ("dataset",), ("mlp",))
    assert len(plan.runs) == 6 and plan.runs[0] == (0, 1, 4, 4, 0)  # one span per pipeline
    assert list(plan.groups) == [dataset_and_model(r.pipeline, ("dataset",), ("mlp",)) for r in runs[::4]]
    assert Plan.from_message(plan.message()) == plan
    # a resumed run (checkpoint at 6 of 10) starts at epoch 6; ids out of order make new spans
    resumed = [SimpleNamespace(run_id=i, pipeline=runs[0].pipeline, epochs=4, total=10) for i in (9, 4, 5)]
    assert Plan.of(1, "t", resumed, ("dataset",), ("mlp",)).runs == ((0, 9, 1, 10, 6), (0, 4, 2, 10, 6))


def test_runs_counts_and_per_model_totals_follow_the_events() -> None:
    board = board_of(planned(1, 2, 3))
    assert board.count(RunStatus.PENDING) == 6 and board.epochs_left == 24
    board.on_start(1, "host:1", 101.0)
    for epoch in (1, 2, 2, 3, 4):  # epoch 2 told twice: counted once
        board.on_epoch(1, 0, epoch, 4, {"train_loss": 1.0 / epoch, "test_loss": 2.0 / epoch}, 101.0 + epoch)
    board.on_end(1, RunStatus.DONE, 106.0, worker="host:1")
    board.on_start(2, "host:2", 102.0)
    board.on_epoch(2, 0, 1, 4, {"train_loss": 1.0, "test_loss": 4.0}, 103.0)
    board.on_end(2, RunStatus.ERROR, 104.0, error="ValueError: boom")
    board.on_epoch(4, 0, 1, 4, {"train_loss": 3.0, "test_loss": 3.0}, 105.0)  # an epoch before its start: running
    model = board.groups[0]
    assert (model.count(RunStatus.DONE), model.count(RunStatus.ERROR), model.count(RunStatus.PENDING)) == (1, 1, 1)
    assert (model.epochs_done, model.epochs_planned, model.best, model.mean) == (5, 12, 0.5, (0.5 + 4.0) / 2)
    assert board.count(RunStatus.RUNNING) == 1 and board.groups[1].mean == 3.0
    assert board.epochs_trained == 6 and board.epochs_left == 24 - 4 - 4 - 1  # a failed run has nothing left to train
    assert [r.run_id for r in board.failed()] == [2] and board.runs[2].error == "ValueError: boom"
    assert list(board.finals()) == [("d0", "m0", 0.5)]
    # run 2 is run again (its worker died): running, no longer failed; then the sweep ends
    board.on_start(2, "host:3", 107.0)
    assert board.count(RunStatus.ERROR) == 0 and not board.failures and board.runs[2].worker == "host:3"
    board.close(110.0)
    assert board.finished and board.count(RunStatus.INTERRUPTED) == 5 and board.ended == 110.0
    assert sum(board.counts) == len(board.runs) == 6


def test_runs_no_plan_names_go_to_an_unknown_model() -> None:
    board = Board(1, "t")
    board.on_start(7, "h:1", 1.0)
    board.on_epoch(7, 0, 1, 2, {"train_loss": 1.0, "test_loss": 1.0}, 2.0)
    (group,) = board.groups
    assert (group.dataset, group.model, group.planned) == (UNKNOWN, UNKNOWN, 1)
    assert board.runs[7].epochs == 2 and group.epochs_planned == 2


def _memory_of(runs: int, epochs: int) -> int:
    """Bytes a board holds after ``runs`` runs of ``epochs`` epochs each, all ended."""
    gc.collect()
    tracemalloc.start()
    try:
        board = board_of(planned(10, runs // 40, 4, epochs))
        for run_id in range(1, runs + 1):
            board.on_start(run_id, "h:1", 1.0)
            for epoch in range(1, epochs + 1):
                board.on_epoch(run_id, 0, epoch, epochs, {"train_loss": 1.0 / epoch, "test_loss": 1.5 / epoch,
                                                          "train_acc": 50.0, "test_acc": 40.0, "seconds": 0.1}, 2.0)
            board.on_end(run_id, RunStatus.DONE, 3.0)
        gc.collect()
        # only what the board's code and this test allocated: tracemalloc traces every thread,
        # and the session cluster's threads allocate meanwhile
        kept = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*mosaic/live/*"),
                                                          tracemalloc.Filter(True, __file__)])
        assert board.runs  # alive until the snapshot is taken
        return sum(stat.size for stat in kept.statistics("filename"))
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_per_run_whatever_the_epochs() -> None:
    short, long = _memory_of(40, 300), _memory_of(40, 3000)  # both curves at their 24 points
    assert long < 1.05 * short, (short, long)  # twenty times the epochs: the same memory
    assert short / 40 < 2000  # bytes per run, its model's share of curves included
