"""The training hook a run's epoch loop calls: :class:`Callback` (torch-free, so that the
driver and the scheduler can hold callbacks without loading torch).

``on_epoch_end`` may raise :class:`~mosaic.errors.StopTraining` (stop, the run is done) or
:class:`~mosaic.errors.TrainingError` (the run fails with that message). The built-in
callbacks (NaN detection, early stopping) are in :mod:`mosaic.exec.training.callbacks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mosaic.errors import StopTraining, TrainingError

__all__ = ["Callback", "StopTraining", "TrainingError"]


class Callback:
    """A hook into the epoch loop. Subclass it and override what you need."""

    def on_train_begin(self, history: Sequence[dict[str, Any]]) -> None:
        """Called once before the first epoch of an attempt, with the epochs already trained."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Called after each epoch (1-based, counting earlier attempts) with its history row."""
