"""A run's checkpoint (mosaic.exec.training.checkpoints): model, optimizer and RNG states come
back exactly, and the user's save_model/load_model may fail without failing the run."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mosaic.exec.training import checkpoints
from mosaic.exec.training.checkpoints import load_checkpoint, save_checkpoint
from mosaic.exec.training.loop import Chain, Trainer
from tests.helpers.training import Affine, tiny_loaders


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


# -- resume without the user's load_model ----------------------------------------------------------
class Pickled(torch.nn.Module):
    """save_model pickles the module; load_model cannot read it back (weights_only) and assigns self."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def forward(self, data: Any, run_info: Any, module_info: Any) -> torch.Tensor:
        return self.layer(data)

    def save_model(self, path: str) -> None:
        torch.save(self, path + ".pt")

    def load_model(self, path: str) -> None:
        self = torch.load(path + ".pt")  # noqa: F841 - raises under weights_only=True


class Broken(Pickled):
    def save_model(self, path: str) -> None:
        raise OSError("disk full")


def test_restore_with_a_failing_load_model(tmp_path: Path) -> None:
    saved_module = Pickled()
    optimizer = torch.optim.Adam(saved_module.parameters(), lr=0.1)
    saved_module.layer(torch.ones(4, 2)).sum().backward()
    optimizer.step()
    notes: list[str] = []
    chain = Chain([saved_module], [{}], [1])
    path = save_checkpoint(tmp_path / "ckpt.pt", chain, optimizer, lambda i: str(tmp_path / f"model_{i}"), {"epoch": 3}, note=notes.append)
    assert notes == [] and (tmp_path / "model_1.pt").is_file()
    with pytest.raises(Exception, match="weights_only"):
        torch.load(tmp_path / "model_1.pt")  # what the user's load_model runs into

    fresh = Pickled()
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.1)
    extra = load_checkpoint(path, Chain([fresh], [{}], [1]), fresh_optimizer, note=notes.append)

    assert extra["epoch"] == 3
    assert torch.equal(fresh.layer.weight, saved_module.layer.weight)
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 1
    assert len(notes) == 1 and "load_model of Pickled (pipeline module 1) failed" in notes[0]
    assert "restored from the run's checkpoint instead" in notes[0]


def test_a_failing_save_model_does_not_fail_the_checkpoint(tmp_path: Path) -> None:
    module = Broken()
    notes: list[str] = []
    path = save_checkpoint(tmp_path / "ckpt.pt", Chain([module], [{}], [0]), None, lambda i: str(tmp_path / "m"), {}, note=notes.append)
    assert len(notes) == 1 and "save_model of Broken (pipeline module 0) failed: OSError: disk full" in notes[0]
    fresh = Broken()
    load_checkpoint(path, Chain([fresh], [{}], [0]), None, note=notes.append)
    assert torch.equal(fresh.layer.weight, module.layer.weight) and len(notes) == 1
