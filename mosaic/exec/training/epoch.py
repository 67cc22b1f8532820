"""What one epoch of the loop keeps per batch, and its reduction (DESIGN §4, §6).

The epoch loop in :mod:`mosaic.exec.training.loop` does nothing per batch beyond the step itself
and :meth:`EpochTotals.add`, which keeps the detached loss (and, when accuracy is
counted, the prediction and target). Every :data:`CHUNK_BATCHES` batches and at the end of
the epoch they are reduced in a few tensor operations. The results are those of a
batch-by-batch reduction: the batch losses are added one at a time in float64 in batch
order, and correct counts are integers. (A loader or model that refills one tensor in
place for every batch would defeat this; DataLoader never does.)
"""

from __future__ import annotations

from typing import Any

import torch

from mosaic.errors import TrainingError
from mosaic.exec.training.accuracy import accuracy_counts, is_binary, resolve_accuracy

#: The epoch loop reduces what it kept (losses, predictions, targets) once per this many batches.
CHUNK_BATCHES = 256


class EpochTotals:
    """Per-batch losses, predictions and targets of one epoch, reduced a chunk at a time.

    ``rule``: the accuracy rule (:data:`~mosaic.exec.training.accuracy.ACCURACY_RULES`); an
    ``auto`` rule is resolved on the first batch, and :attr:`rule` then holds what it became.
    ``check_binary``: the rule was resolved from ``auto`` to ``threshold``, so every target is
    checked to be 0/1 (:meth:`finish` says whether one was not).
    """

    def __init__(self, rule: str, check_binary: bool = False) -> None:
        self.rule = rule
        self.check_binary = check_binary
        self.losses: list[torch.Tensor] = []
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.loss_sum = 0.0
        self.correct = 0
        self.total = 0
        self.nonbinary = False
        self.counting = rule != "none"

    def add(self, loss: torch.Tensor, prediction: Any, target: Any) -> None:
        """Keep one batch's loss (detached) and, when accuracy is counted, its prediction and target."""
        self.losses.append(loss.detach())
        if self.counting:
            if (type(prediction) is not torch.Tensor or type(target) is not torch.Tensor) and not (
                isinstance(prediction, torch.Tensor) and isinstance(target, torch.Tensor)
            ):
                if self.rule == "auto":
                    self.rule = "none"
                    self.counting = False
                return
            if self.rule == "auto":
                self.rule = resolve_accuracy("auto", prediction, target)
                self.check_binary = self.rule == "threshold"
                self.counting = self.rule != "none"
                if not self.counting:
                    return
            self.pairs.append((prediction.detach(), target))
        if len(self.losses) >= CHUNK_BATCHES:
            self.reduce()

    def reduce(self) -> None:
        """Fold the kept batches into the running sums (batch order kept for the losses)."""
        if self.losses:
            values = torch.stack(self.losses)
            if values.numel() != len(self.losses):
                shape = tuple(self.losses[0].shape)
                raise TrainingError(
                    f"the loss function returned a tensor of shape {shape}, not one value per batch; "
                    "use a reduction such as mean"
                )
            total = self.loss_sum
            for value in values.to(torch.float64).reshape(-1).tolist():
                total += value  # float64, one batch at a time, as the sum has always been taken
            self.loss_sum = total
            self.losses.clear()
        if self.pairs:
            rule = self.rule
            check = self.check_binary
            for prediction, target in _concatenated(self.pairs):
                if check and not bool(is_binary(target)):
                    self.nonbinary = True
                counts = accuracy_counts(rule, prediction, target)
                if counts is not None:
                    self.correct += int(counts[0])
                    self.total += counts[1]
            self.pairs.clear()

    def finish(self) -> tuple[float, int, int, bool]:
        """``(sum of batch losses, correct, total, targets not all 0/1)`` over the epoch."""
        self.reduce()
        return self.loss_sum, self.correct, self.total, self.nonbinary


def _concatenated(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batches' (prediction, target) pairs as one concatenated pair when they stack along
    dimension 0 with the same per-batch relation of shapes; else the pairs as they are."""
    first_p, first_t = pairs[0]
    if len(pairs) == 1 or first_p.ndim == 0 or first_t.ndim == 0:
        return pairs
    p_tail, t_tail = first_p.shape[1:], first_t.shape[1:]
    for prediction, target in pairs:
        if (
            prediction.ndim != first_p.ndim or target.ndim != first_t.ndim
            or prediction.shape[1:] != p_tail or target.shape[1:] != t_tail
            or prediction.shape[0] != target.shape[0]
            or prediction.dtype != first_p.dtype or target.dtype != first_t.dtype
            or prediction.device != first_p.device or target.device != first_t.device
        ):
            return pairs
    return [(torch.cat([p for p, _ in pairs]), torch.cat([t for _, t in pairs]))]

