"""Boards of the live view built without a cluster: runs as a sweep plans them, then trained
event by event, as the scheduler's page takes them in."""

from __future__ import annotations

from types import SimpleNamespace

from mosaic.live.board import Board, Plan
from mosaic.store.status import RunStatus


def pipeline(dataset: str, model: str) -> list[dict]:
    """A two-section pipeline: dataset key ``dataset``, model key ``model``."""
    return [{"type": "dataset", "class": "dataset_OR", "key": dataset}, {"type": "mlp", "class": "mlp_brick", "key": model}]


def planned(datasets: int, models: int, replicates: int, epochs: int = 4) -> list[SimpleNamespace]:
    """Runs as a sweep plans them (d0.., m0..): each pipeline's replicates consecutive, ids from 1."""
    pipes = [pipeline(f"d{d}", f"m{m}") for d in range(datasets) for m in range(models)]
    return [SimpleNamespace(run_id=i + 1, pipeline=pipe, epochs=epochs, total=None)
            for i, pipe in enumerate(p for p in pipes for _ in range(replicates))]


def board_of(runs: list[SimpleNamespace]) -> Board:
    """A board that took the plan of ``runs`` (sweep 3, started at 100 s)."""
    board = Board()
    board.apply(Plan.of(3, "ab12cd34", runs, ("dataset",), ("mlp",), kind="run", config="c.ini", started=100.0))
    return board


def trained(board: Board, run_ids: range, epochs: int = 4, fail_every: int = 0) -> Board:
    """``board`` after each run of ``run_ids`` started, trained ``epochs`` and ended (every
    ``fail_every``-th with an error)."""
    for run_id in run_ids:
        board.on_start(run_id, f"host:{run_id % 3}", 10.0)
        for epoch in range(1, epochs + 1):
            loss = 1.0 / epoch + (run_id % 11) / 100
            board.on_epoch(run_id, 0, epoch, epochs, {"train_loss": loss, "test_loss": loss + 0.1}, 10.0 + epoch)
        failed = fail_every and run_id % fail_every == 0
        board.on_end(run_id, RunStatus.ERROR if failed else RunStatus.DONE, 20.0, error="RuntimeError: boom" if failed else None)
    return board
