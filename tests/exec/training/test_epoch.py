"""One epoch's reduction (mosaic.exec.training.epoch): the same sums batch by batch or in chunks.

The same seeds give the same losses: per-epoch losses and accuracies pinned before the
epoch loop was made faster (tests/data/pinned/pinned_losses.json, written by
tests/data/pinned/make_pinned.py with the code of that time), compared to 1e-12 on CPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from mosaic.errors import TrainingError
from mosaic.exec.training.accuracy import accuracy_counts
from mosaic.exec.training.loop import Chain, Trainer
from mosaic.exec.training.run import RunTask, execute_run
from tests.helpers import DATA, TUTORIAL

CLASSES = DATA / "pinned" / "classes.py"
PINNED = DATA / "pinned" / "pinned_losses.json"
KEYS = ("train_loss", "test_loss", "train_acc", "test_acc")


def _section(type_: str, class_name: str, path: Path = CLASSES, **params: Any) -> dict[str, Any]:
    return {"type": type_, "class": class_name, "path_to_class": str(path), **params}


#: name -> (pipeline, loss function, epochs). Sizes chosen so that batches > 1 leave a partial last batch.
CASES: dict[str, tuple[list[dict[str, Any]], str, int]] = {
    "tutorial_or_batch1": (
        [_section("dataset", "dataset_OR", TUTORIAL / "dataset.py", batch_size=1, data_size=40, train_prop=0.8),
         _section("model", "mlp_funnel", TUTORIAL / "mlp.py", length=4, width=2)],
        "MSELoss", 3,
    ),
    "regression_batch3_partial": (
        [_section("dataset", "regression", batch_size=3, data_size=22), _section("model", "mlp")],
        "MSELoss", 4,
    ),
    "regression_batch1": (
        [_section("dataset", "regression", batch_size=1, data_size=15), _section("model", "mlp")],
        "MSELoss", 3,
    ),
    "binary_batch4_partial": (
        [_section("dataset", "binary", batch_size=4, data_size=27), _section("model", "mlp")],
        "MSELoss", 4,
    ),
    "classes_batch5_partial": (
        [_section("dataset", "classes", batch_size=5, data_size=33), _section("model", "mlp", width=8)],
        "CrossEntropyLoss", 4,
    ),
    "classes_batch1": (
        [_section("dataset", "classes", batch_size=1, data_size=20), _section("model", "mlp")],
        "CrossEntropyLoss", 3,
    ),
}


def run_case(name: str, run_files: Path) -> list[dict[str, Any]]:
    """Train case ``name`` on CPU with one torch thread; its history rows (without timings)."""
    pipeline, loss, epochs = CASES[name]
    process = {
        "lr": 1e-2, "epochs": epochs, "loss_function": loss, "class_loss_function": None,
        "path_to_class_loss_function": None, "optimizer": "Adam", "seed": 11, "accuracy": "auto",
        "checkpoint_every": None, "patience": None,
    }
    task = RunTask(run_id=3, attempt=0, sweep_id=1, pipeline=pipeline, process=process,
                   config_dir=str(CLASSES.parent), run_files=str(run_files), epochs=epochs, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outcome = execute_run(task)
    finally:
        torch.set_num_threads(threads)
    assert outcome.status == "done", outcome.error
    return [{"epoch": row["epoch"], **{k: row[k] for k in KEYS}} for row in outcome.history]


@pytest.mark.parametrize("name", sorted(CASES))
def test_losses_are_unchanged(name: str, tmp_path: Path) -> None:
    pinned = json.loads(PINNED.read_text())[name]
    history = run_case(name, tmp_path)
    assert [row["epoch"] for row in history] == [row["epoch"] for row in pinned]
    for got, want in zip(history, pinned, strict=True):
        for key in KEYS:
            if want[key] is None:
                assert got[key] is None, (name, got["epoch"], key)
            else:
                assert got[key] == pytest.approx(want[key], abs=1e-12, rel=0), (name, got["epoch"], key)


def test_the_cases_cover_what_they_claim() -> None:
    pinned = json.loads(PINNED.read_text())
    assert all(row["train_acc"] is None for row in pinned["regression_batch3_partial"])  # no accuracy
    assert all(row["test_acc"] is not None for row in pinned["classes_batch5_partial"])  # argmax
    assert all(row["test_acc"] is not None for row in pinned["binary_batch4_partial"])  # threshold
    assert len({row["train_loss"] for row in pinned["classes_batch1"]}) == 3  # it trains


@pytest.mark.parametrize("name", ["classes_batch1", "binary_batch4_partial", "regression_batch3_partial"])
def test_losses_are_unchanged_when_reduced_every_two_batches(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mosaic.exec.training import epoch

    monkeypatch.setattr(epoch, "CHUNK_BATCHES", 2)
    pinned = json.loads(PINNED.read_text())[name]
    history = run_case(name, tmp_path)
    for got, want in zip(history, pinned, strict=True):
        for key in KEYS:
            assert got[key] == (None if want[key] is None else pytest.approx(want[key], abs=1e-12, rel=0))


# -- the reduction, batch by batch or in chunks -------------------------------------------
def _batch_by_batch(loader: list, rule: str) -> tuple[float, float]:
    """The epoch's mean loss and accuracy reduced one batch at a time (the reference)."""
    total, correct, count = torch.zeros((), dtype=torch.float64), 0, 0
    for x, y in loader:
        prediction = x  # the chain below is the identity
        total += torch.nn.functional.mse_loss(prediction.reshape(y.shape).float(), y.float()).to(torch.float64)
        got = accuracy_counts(rule, prediction, y)
        correct, count = correct + int(got[0]), count + got[1]
    return float(total) / len(loader), 100.0 * correct / count


class Identity:
    def forward(self, data: torch.Tensor, run_info: dict, module_info: dict) -> torch.Tensor:
        return data


@pytest.mark.parametrize("shapes", ["same", "flat_prediction", "mixed_rows"])
def test_epoch_reduction_matches_batch_by_batch(shapes: str) -> None:
    g = torch.Generator().manual_seed(4)
    sizes = [3, 3, 3, 2] if shapes != "mixed_rows" else [3, 1, 4, 2]
    loader = []
    for rows in sizes:
        y = torch.randint(0, 2, (rows, 1), generator=g).float()
        x = torch.rand(rows, 1, generator=g)
        loader.append((x.reshape(rows) if shapes == "flat_prediction" else x, y))
    loss = lambda p, y: torch.nn.functional.mse_loss(p.reshape(y.shape), y)  # noqa: E731
    trainer = Trainer(Chain([Identity()], [{}], [1]), loss, None, "cpu", accuracy="threshold")
    assert trainer.run_epoch(loader, training=False) == _batch_by_batch(loader, "threshold")


def test_epoch_reduction_over_several_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from mosaic.exec.training import epoch

    g = torch.Generator().manual_seed(5)
    loader = [(torch.rand(2, 1, generator=g), torch.randint(0, 2, (2, 1), generator=g).float()) for _ in range(7)]
    loss = torch.nn.MSELoss()
    whole = Trainer(Chain([Identity()], [{}], [1]), loss, None, "cpu").run_epoch(loader, training=False)
    monkeypatch.setattr(epoch, "CHUNK_BATCHES", 3)
    chunked = Trainer(Chain([Identity()], [{}], [1]), loss, None, "cpu").run_epoch(loader, training=False)
    assert chunked == whole == _batch_by_batch(loader, "threshold")


def test_a_loss_that_is_not_one_value_per_batch_is_a_clear_error() -> None:
    loader = [(torch.zeros(2, 1), torch.zeros(2, 1))]
    trainer = Trainer(Chain([Identity()], [{}], [1]), torch.nn.MSELoss(reduction="none"), None, "cpu")
    with pytest.raises(TrainingError, match="one value per batch"):
        trainer.run_epoch(loader, training=False)
