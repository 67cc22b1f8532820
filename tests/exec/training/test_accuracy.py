"""Accuracy rules (mosaic.exec.training.accuracy): argmax, threshold, sign, none and auto, on
tensors and on whole runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mosaic.errors import TrainingError
from mosaic.exec.training.accuracy import accuracy_counts, resolve_accuracy
from mosaic.exec.training.run import execute_run
from tests.helpers.training import make_task, section, signed_pipeline


def counts(rule: str, prediction: list, target: list, target_dtype: torch.dtype = torch.float32) -> tuple[int, int] | None:
    got = accuracy_counts(rule, torch.tensor(prediction), torch.tensor(target, dtype=target_dtype))
    return None if got is None else (int(got[0]), got[1])


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


def test_accuracy_argmax_for_class_indices(tmp_path: Path) -> None:
    pipeline = [section("dataset", "dataset_classes", batch_size=8, data_size=40), section("model", "linear")]
    outcome = execute_run(make_task(tmp_path, pipeline, epochs=3, lr=0.1, loss_function="CrossEntropyLoss"))
    assert outcome.status == "done", outcome.error
    accs = [r["test_acc"] for r in outcome.history]
    assert all(a is not None and 0 <= a <= 100 for a in accs)
    assert all(a * 8 / 100 == round(a * 8 / 100) for a in accs)  # one test batch of 8
    assert outcome.results["nb_params"] == 3 * 3 + 3  # linear is not an nn.Module, still trained


@pytest.mark.parametrize(("rule", "has_accuracy"), [("auto", False), ("none", False), ("sign", True)])
def test_accuracy_rules_on_regression(tmp_path: Path, rule: str, has_accuracy: bool) -> None:
    outcome = execute_run(make_task(tmp_path, signed_pipeline(), accuracy=rule, legacy_history=True))
    assert outcome.status == "done", outcome.error
    assert all((r["train_acc"] is not None) is has_accuracy for r in outcome.history)
    assert (outcome.results["test_acc"] is not None) is has_accuracy
    legacy = torch.load(tmp_path / "history_1.pt")
    assert math.isnan(legacy["train_acc"][0]) is (not has_accuracy)
