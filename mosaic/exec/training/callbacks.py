"""The built-in training callbacks (DESIGN §6): :class:`NonFiniteLoss` fails a run whose loss
turns NaN or infinite, :class:`EarlyStopping` stops one whose loss stalls. The hook they
implement, :class:`~mosaic.exec.wire.callbacks.Callback`, is torch-free in the wire package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mosaic.exec.wire.callbacks import Callback, StopTraining, TrainingError

__all__ = ["Callback", "EarlyStopping", "NonFiniteLoss", "default_callbacks"]


class NonFiniteLoss(Callback):
    """Fail the run as soon as an epoch's train or test loss is NaN or infinite."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Raise TrainingError naming the epoch when a loss is not finite."""
        for key in ("train_loss", "test_loss"):
            value = logs.get(key)
            if value is not None and not math.isfinite(value):
                raise TrainingError(
                    f"loss is {value} at epoch {epoch} ({key}); lower lr or check the model and data for "
                    "NaN/inf values"
                )


class EarlyStopping(Callback):
    """Stop when the monitored loss has not improved for ``patience`` epochs in a row."""

    def __init__(self, patience: int, min_delta: float = 0.0, monitor: str = "test_loss") -> None:
        if patience < 1:
            raise ValueError(f"patience must be a positive integer. Instead got {patience}")
        self.patience = patience
        self.min_delta = min_delta
        self.monitor = monitor
        self.best = math.inf
        self.wait = 0

    def on_train_begin(self, history: Sequence[dict[str, Any]]) -> None:
        """Rebuild the best value and the waiting count from earlier epochs (resume)."""
        self.best, self.wait = math.inf, 0
        for row in history:
            self._update(row.get(self.monitor))

    def _update(self, value: float | None) -> None:
        if value is not None and value < self.best - self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Raise StopTraining once the monitored loss stalled for ``patience`` epochs."""
        self._update(logs.get(self.monitor))
        if self.wait >= self.patience:
            raise StopTraining(
                f"early stop at epoch {epoch}: {self.monitor} has not improved on {self.best:.6g} "
                f"for {self.patience} epochs"
            )


def default_callbacks(patience: int | None = None) -> list[Callback]:
    """The built-in callbacks: the NaN/inf detector, then early stopping when ``patience`` is set."""
    callbacks: list[Callback] = [NonFiniteLoss()]
    if patience:
        callbacks.append(EarlyStopping(int(patience)))
    return callbacks
