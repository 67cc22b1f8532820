"""The epoch loop (mosaic.exec.training.loop): the Trainer's epoch rows, a chain of modules, what
a loader must yield."""

from __future__ import annotations

import pytest
import torch

from mosaic.errors import TrainingError
from mosaic.exec.training.loop import Chain, Trainer
from tests.helpers.training import Affine, tiny_loaders


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
