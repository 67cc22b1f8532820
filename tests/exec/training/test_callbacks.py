"""Training callbacks: the built-in ones (mosaic.exec.training.callbacks: NonFiniteLoss,
EarlyStopping) and the hook (mosaic.exec.wire.callbacks.Callback) a run's loop calls, given
to execute_run or carried by the task."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from mosaic.errors import StopTraining, TrainingError
from mosaic.exec.training import callbacks as train_callbacks
from mosaic.exec.training.callbacks import EarlyStopping, NonFiniteLoss
from mosaic.exec.training.run import RunTask, execute_run
from mosaic.exec.wire.callbacks import Callback
from tests.helpers import CLASSES_WORKER as CLASSES


def row(epoch: int, test_loss: float, train_loss: float = 1.0) -> dict[str, Any]:
    return {"epoch": epoch, "train_loss": train_loss, "test_loss": test_loss}


def test_early_stopping_counts_epochs_without_improvement() -> None:
    stopper = EarlyStopping(patience=2)
    stopper.on_train_begin([])
    stopper.on_epoch_end(1, row(1, 1.0))
    stopper.on_epoch_end(2, row(2, 0.5))
    stopper.on_epoch_end(3, row(3, 0.6))
    with pytest.raises(StopTraining, match="early stop at epoch 4"):
        stopper.on_epoch_end(4, row(4, 0.5))  # equal is not better


def test_early_stopping_replays_history_on_resume() -> None:
    stopper = EarlyStopping(patience=3)
    stopper.on_train_begin([row(1, 1.0), row(2, 0.4), row(3, 0.5), row(4, 0.6)])
    assert (stopper.best, stopper.wait) == (0.4, 2)
    with pytest.raises(StopTraining):
        stopper.on_epoch_end(5, row(5, 0.45))
    with pytest.raises(ValueError, match="positive integer"):
        EarlyStopping(0)


def test_non_finite_loss() -> None:
    detector = NonFiniteLoss()
    detector.on_epoch_end(1, row(1, 0.5))
    with pytest.raises(TrainingError, match="loss is nan at epoch 4"):
        detector.on_epoch_end(4, row(4, 0.5, train_loss=math.nan))
    with pytest.raises(TrainingError, match="loss is inf at epoch 2"):
        detector.on_epoch_end(2, row(2, math.inf))


def test_default_callbacks() -> None:
    assert [type(c) for c in train_callbacks.default_callbacks()] == [NonFiniteLoss]
    assert [type(c) for c in train_callbacks.default_callbacks(3)] == [NonFiniteLoss, EarlyStopping]


class Recorder(Callback):
    def __init__(self, stop_at: int | None = None) -> None:
        self.begun: list[int] = []
        self.epochs: list[int] = []
        self.stop_at = stop_at

    def on_train_begin(self, history: Any) -> None:
        self.begun.append(len(history))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.epochs.append(epoch)
        assert set(logs) == {"epoch", "train_loss", "test_loss", "train_acc", "test_acc", "seconds"}
        if epoch == self.stop_at:
            raise StopTraining(f"recorder stop at {epoch}")


def signed_task(run_files: Path, epochs: int = 3, **extra: Any) -> RunTask:
    pipeline = [
        {"type": "dataset", "class": "dataset_signed", "path_to_class": str(CLASSES), "batch_size": 8, "data_size": 40},
        {"type": "model", "class": "mlp_dropout", "path_to_class": str(CLASSES)},
    ]
    process = {"lr": 1e-2, "loss_function": "MSELoss", "optimizer": "Adam", "seed": 1, "accuracy": "auto"}
    return RunTask(1, 0, 1, pipeline, process, str(CLASSES.parent), str(run_files), epochs, **extra)


def test_callbacks_are_injectable(tmp_path: Path) -> None:
    extra = Recorder(stop_at=2)
    outcome = execute_run(signed_task(tmp_path, epochs=5), callbacks=[extra])
    assert outcome.status == "done"
    assert extra.begun == [0] and extra.epochs == [1, 2]
    assert outcome.stopped_early and outcome.message == "recorder stop at 2"
    assert outcome.results["epochs"] == 2
    # the task can carry callbacks too (they are pickled with it)
    carried = Recorder()
    outcome = execute_run(signed_task(tmp_path / "b", epochs=2, callbacks=[carried]))
    assert carried.epochs == [1, 2] and not outcome.stopped_early


def test_callback_error_fails_the_run(tmp_path: Path) -> None:
    class Boom(Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            raise RuntimeError(f"boom at {epoch}")

    outcome = execute_run(signed_task(tmp_path), callbacks=[Boom()])
    assert outcome.status == "error"
    assert "RuntimeError: boom at 1" in outcome.error
    assert len(outcome.history) == 1
