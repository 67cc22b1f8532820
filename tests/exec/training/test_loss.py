"""Loss on aligned shapes (mosaic.exec.training.loss): never a silent broadcast, classification
losses untouched; code written for the original tool (a (B, 1) prediction against a (B,)
target) trains the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mosaic.errors import TrainingError
from mosaic.exec.training.loss import AlignedLoss, alignment
from mosaic.exec.training.run import RunTask, execute_run


def test_alignment_rule() -> None:
    assert alignment((8, 1), (8,)) == (8,)
    assert alignment((8,), (8, 1)) == (8, 1)
    assert alignment((1, 1), (1,)) == (1,)  # batch size 1: a (1,) prediction, not a scalar
    assert alignment((8, 1, 3), (8, 3)) == (8, 3)
    assert alignment((8, 3), (8, 3)) is None
    assert alignment((8, 3), (8,)) is None
    assert alignment((1, 3), (1,)) is None  # class scores of one sample: left alone


@pytest.mark.parametrize("batch", [8, 1])
def test_mse_on_squeezable_shapes_matches_the_squeezed_loss(batch: int) -> None:
    prediction, target = torch.rand(batch, 1, requires_grad=True), torch.rand(batch)
    loss = AlignedLoss(torch.nn.MSELoss())
    value = loss(prediction, target)
    assert torch.allclose(value, ((prediction.squeeze(1) - target) ** 2).mean())
    value.backward()
    assert prediction.grad is not None and prediction.grad.shape == (batch, 1)
    # a last partial batch has other shapes: decided again
    assert torch.allclose(loss(prediction[:1], target[:1]), ((prediction[:1, 0] - target[:1]) ** 2).mean())


def test_a_loss_that_would_broadcast_fails_naming_both_shapes() -> None:
    loss = AlignedLoss(torch.nn.MSELoss())
    with pytest.raises(TrainingError, match=r"prediction shape \(8, 3\) and target shape \(8,\).*output_size"):
        loss(torch.rand(8, 3), torch.rand(8))

    class Custom(torch.nn.Module):  # not an nn.MSELoss, but torch warns that it broadcasts
        def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.l1_loss(prediction, target)

    with pytest.raises(TrainingError, match=r"\(4, 2\) and target shape \(4, 1\)"):
        AlignedLoss(Custom())(torch.rand(4, 2), torch.rand(4, 1))


def test_classification_losses_are_unchanged() -> None:
    scores, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    loss = AlignedLoss(torch.nn.CrossEntropyLoss())
    assert torch.equal(loss(scores, labels), torch.nn.CrossEntropyLoss()(scores, labels))
    assert torch.equal(loss(scores[:1], labels[:1]), torch.nn.CrossEntropyLoss()(scores[:1], labels[:1]))
    assert loss.reduction == "mean"  # the wrapped loss's attributes stay reachable


def test_a_broadcasting_run_ends_as_error(tmp_path: Path) -> None:
    folder = tmp_path / "classes"
    folder.mkdir()
    (folder / "wide.py").write_text(
        "import torch\n"
        "class Data:\n"
        "    def prepare(self, data, run_info, module_info):\n"
        "        ds = torch.utils.data.TensorDataset(torch.rand(16, 2), torch.rand(16))\n"
        "        loader = torch.utils.data.DataLoader(ds, batch_size=8)\n"
        "        return loader, loader\n"
        "class Wide(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layer = torch.nn.Linear(2, 3)\n"
        "    def forward(self, data, run_info, module_info):\n"
        "        return self.layer(data)\n"
    )
    task = RunTask(
        run_id=1, attempt=0, sweep_id=1, config_dir=str(folder), run_files=str(tmp_path / "files"), epochs=1,
        pipeline=[
            {"type": "dataset", "class": "Data", "path_to_class": "wide.py"},
            {"type": "mlp", "class": "Wide", "path_to_class": "wide.py"},
        ],
        process={"lr": 0.01, "loss_function": "MSELoss", "data_scheme": ["dataset"]},
    )
    outcome = execute_run(task)
    assert outcome.status == "error"
    assert "prediction shape (8, 3) and target shape (8,)" in (outcome.error or "")
