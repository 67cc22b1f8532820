"""The epoch loop: accuracy rules, callbacks, checkpoints, the legacy history file."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mosaic.errors import StopTraining, TrainingError
from mosaic.exec.training import callbacks as train_callbacks
from mosaic.exec.training import checkpoints
from mosaic.exec.training.accuracy import accuracy_counts, resolve_accuracy
from mosaic.exec.training.callbacks import EarlyStopping, NonFiniteLoss
from mosaic.exec.training.loop import Chain, Trainer
from mosaic.exec.training.run import RunTask, execute_run
from mosaic.exec.wire.callbacks import Callback

CLASSES = Path(__file__).parent / "data" / "classes_worker" / "classes.py"


def counts(rule: str, prediction: list, target: list, target_dtype: torch.dtype = torch.float32) -> tuple[int, int] | None:
    got = accuracy_counts(rule, torch.tensor(prediction), torch.tensor(target, dtype=target_dtype))
    return None if got is None else (int(got[0]), got[1])


# --- accuracy ---------------------------------------------------------------------------


def test_argmax_with_class_indices_and_one_hot() -> None:
    scores = [[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]]
    assert counts("argmax", scores, [1, 0, 0, 2], torch.int64) == (3, 4)
    one_hot = [[0, 1, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1]]
    assert counts("argmax", scores, one_hot) == (3, 4)
    with pytest.raises(TrainingError, match="class scores"):
        counts("argmax", [[0.3], [0.6]], [0, 1], torch.int64)


def test_threshold_and_sign() -> None:
    assert counts("threshold", [[0.2], [0.7], [0.6], [0.4]], [[0], [1], [0], [0]]) == (3, 4)
    # prediction (B, 1) against target (B,): compared element by element, not broadcast
    assert counts("threshold", [[0.2], [0.7], [0.6], [0.4]], [0, 1, 0, 0]) == (3, 4)
    assert counts("sign", [[-0.2], [0.7], [0.1], [-3.0]], [[-1.0], [0.5], [-0.1], [-2.0]]) == (3, 4)
    assert counts("none", [[0.2]], [[0.0]]) is None
    with pytest.raises(TrainingError, match="does not match"):
        counts("threshold", [[0.2, 0.1]], [[0.0, 1.0, 1.0]])


def test_auto_rule() -> None:
    scores = torch.randn(4, 3)
    assert resolve_accuracy("auto", scores, torch.tensor([0, 2, 1, 1])) == "argmax"
    assert resolve_accuracy("auto", torch.rand(4, 1), torch.tensor([[0.0], [1.0], [1.0], [0.0]])) == "threshold"
    # multi-label 0/1 targets of the prediction's shape: threshold, not argmax
    assert resolve_accuracy("auto", torch.rand(4, 3), torch.randint(0, 2, (4, 3)).float()) == "threshold"
    assert resolve_accuracy("auto", torch.rand(4, 1), torch.tensor([[0.3], [1.0], [1.0], [0.0]])) == "none"
    assert resolve_accuracy("sign", scores, torch.rand(4, 3)) == "sign"
    with pytest.raises(TrainingError, match="not one of"):
        resolve_accuracy("percent", scores, scores)


# --- callbacks ---------------------------------------------------------------------------


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


# --- the loop and checkpoints --------------------------------------------------------------


class Affine(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def forward(self, data: torch.Tensor, run_info: dict, module_info: dict) -> torch.Tensor:
        return self.layer(data)


def tiny_loaders() -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 2, generator=g)
    y = (x.sum(1, keepdim=True) > 0).float()
    data = torch.utils.data.TensorDataset(x, y)
    make = torch.utils.data.DataLoader
    return make(data, batch_size=8, shuffle=True), make(data, batch_size=8)


def test_trainer_epoch_rows_and_accuracy() -> None:
    torch.manual_seed(0)
    model = Affine()
    chain = Chain([model], [{}], [1])
    optimizer = torch.optim.SGD(chain.parameters(), lr=0.5)
    trainer = Trainer(chain, torch.nn.MSELoss(), optimizer, "cpu")
    train_loader, test_loader = tiny_loaders()
    result = trainer.fit(train_loader, test_loader, epochs=3)
    assert trainer.accuracy == "threshold"
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert all(r["test_acc"] * 24 / 100 == pytest.approx(round(r["test_acc"] * 24 / 100)) for r in result.history)
    assert not model.training  # the last pass was the test pass
    assert chain.nb_params() == 3


def test_empty_loader_is_a_clear_error() -> None:
    chain = Chain([Affine()], [{}], [1])
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(3, 2), torch.zeros(3, 1)), batch_size=4, drop_last=True)
    trainer = Trainer(chain, torch.nn.MSELoss(), None, "cpu")
    with pytest.raises(TrainingError, match="train loader yields no batch"):
        trainer.fit(empty, empty, epochs=1)


def test_bad_batch_shape() -> None:
    loader = [(torch.zeros(2, 2), torch.zeros(2, 1), torch.zeros(2))]
    trainer = Trainer(Chain([Affine()], [{}], [1]), torch.nn.MSELoss(), None, "cpu")
    with pytest.raises(TrainingError, match=r"\(inputs, targets\) pairs; it yielded a tuple of length 3"):
        trainer.run_epoch(loader, training=True)



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

def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(3)
    chain = Chain([Affine()], [{}], [1])
    optimizer = torch.optim.Adam(chain.parameters(), lr=0.1)
    trainer = Trainer(chain, torch.nn.MSELoss(), optimizer, "cpu")
    train_loader, test_loader = tiny_loaders()
    trainer.fit(train_loader, test_loader, epochs=2)
    path = checkpoints.save_checkpoint(tmp_path / "checkpoint_9.pt", chain, optimizer, lambda i: str(tmp_path / f"m_{i}"), {"history": trainer.history})
    expected = (torch.rand(3), random.random(), np.random.rand())
    # scramble everything, then restore
    other = Chain([Affine()], [{}], [1])
    other_optimizer = torch.optim.Adam(other.parameters(), lr=0.1)
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    extra = checkpoints.load_checkpoint(path, other, other_optimizer)
    assert extra["history"] == trainer.history
    assert torch.equal(torch.rand(3), expected[0])
    assert (random.random(), np.random.rand()) == expected[1:]
    for a, b in zip(chain.modules[0].state_dict().values(), other.modules[0].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert other_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_restores_torch_rng(tmp_path: Path) -> None:
    chain = Chain([Affine()], [{}], [1])
    path = checkpoints.save_checkpoint(tmp_path / "c.pt", chain, None, str, {})
    expected = torch.rand(5)
    torch.manual_seed(1234)
    checkpoints.load_checkpoint(path, chain, None)
    assert torch.equal(torch.rand(5), expected)


def test_a_packed_optimizer_state_comes_back_bit_for_bit(tmp_path: Path) -> None:
    from mosaic.exec.training import tensor_pack

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).sum().backward()
        optimizer.step()
    state = optimizer.state_dict()
    torch.save(tensor_pack.pack(state), tmp_path / "p.pt")
    back = tensor_pack.unpack(torch.load(tmp_path / "p.pt", weights_only=True))
    assert back["param_groups"] == state["param_groups"] and back["param_groups"][0]["betas"] == (0.9, 0.999)
    for index, entry in state["state"].items():
        for key, tensor in entry.items():
            assert back["state"][index][key].dtype == tensor.dtype
            assert torch.equal(back["state"][index][key], tensor) and back["state"][index][key].shape == tensor.shape
