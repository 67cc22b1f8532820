"""The epoch loop of one run (DESIGN §4, §6): :class:`Chain` is a built pipeline (the
pipeline-scheme objects, called in order) and :class:`Trainer` trains it epoch by epoch,
keeping the history; callbacks see each epoch's row and may stop training
(:class:`~mosaic.errors.StopTraining`) or fail the run (:class:`~mosaic.errors.TrainingError`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mosaic.errors import StopTraining, TrainingError
from mosaic.exec.training import epoch as epoch_totals
from mosaic.exec.training.accuracy import ACCURACY_RULES
from mosaic.exec.wire.callbacks import Callback


def to_device(value: Any, device: torch.device | str) -> Any:
    """Move tensors (also inside lists, tuples and dicts) to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return type(value)(to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


@dataclass
class Chain:
    """The pipeline-scheme objects of a run, applied in order by :meth:`forward`."""

    modules: list[Any]
    sections: list[dict[str, Any]]
    indices: list[int]  # position of each module's section in the run's pipeline
    run_info: dict[str, Any] = field(default_factory=dict)

    def forward(self, data: Any) -> Any:
        """``x = obj.forward(x, run_info, module_info)`` for each module."""
        for module, section in zip(self.modules, self.sections, strict=True):
            data = module.forward(data, self.run_info, section)
        return data

    def train(self, mode: bool = True) -> None:
        """Put every torch module in training (or eval) mode."""
        for module in self.modules:
            if isinstance(module, torch.nn.Module):
                module.train(mode)

    def parameters(self) -> list[torch.Tensor]:
        """Trainable parameters of every module that has ``parameters()``, each once."""
        seen: dict[int, torch.Tensor] = {}
        for module in self.modules:
            params = getattr(module, "parameters", None)
            if not callable(params):
                continue
            for param in params():
                if isinstance(param, torch.Tensor) and param.requires_grad:
                    seen.setdefault(id(param), param)
        return list(seen.values())

    def nb_params(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters())


def _split(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, list | tuple) and len(batch) == 2:
        return batch[0], batch[1]
    size = f" of length {len(batch)}" if isinstance(batch, list | tuple) else ""
    raise TrainingError(f"a loader must yield (inputs, targets) pairs; it yielded a {type(batch).__name__}{size}")


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` ends with."""

    history: list[dict[str, Any]]
    stopped_early: bool
    message: str | None


class Trainer:
    """Trains a :class:`Chain` epoch by epoch; ``history`` holds every epoch, earlier attempts included."""

    def __init__(
        self,
        chain: Chain,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        optimizer: torch.optim.Optimizer | None,
        device: torch.device | str,
        accuracy: str = "auto",
        callbacks: Iterable[Callback] = (),
        history: Sequence[dict[str, Any]] = (),
    ) -> None:
        if accuracy not in ACCURACY_RULES:
            raise TrainingError(f"accuracy '{accuracy}' is not one of {', '.join(ACCURACY_RULES)}")
        self.chain = chain
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.device = device
        self.accuracy = accuracy  # resolved from 'auto' on the first batch
        self._auto = accuracy == "auto"
        self.callbacks = list(callbacks)
        self.history = [dict(row) for row in history]

    def run_epoch(self, loader: Iterable[Any], training: bool) -> tuple[float, float | None]:
        """One pass over ``loader``: ``(mean batch loss, accuracy in percent or None)``.

        The loop does only the step itself per batch: losses (detached), predictions and
        targets are kept and reduced by :class:`~mosaic.exec.training.epoch.EpochTotals` once every
        few hundred batches (and at the end), which gives the same sums as reducing batch by batch: batch losses are added
        one by one in float64 in batch order, and correct counts are integers.
        """
        self.chain.train(training)
        totals = epoch_totals.EpochTotals(self.accuracy, self._auto and self.accuracy == "threshold")
        batches = 0
        device = self.device
        on_cpu = torch.device(device).type == "cpu"
        forward = self.chain.forward
        loss_fn = self.loss_fn
        optimizer = self.optimizer if training else None
        add = totals.add
        with torch.set_grad_enabled(training):
            for batch in loader:
                if (type(batch) is tuple or type(batch) is list) and len(batch) == 2:
                    inputs, target = batch
                else:
                    inputs, target = _split(batch)
                if not (on_cpu and type(inputs) is torch.Tensor and inputs.is_cpu):
                    inputs = to_device(inputs, device)
                if not (on_cpu and type(target) is torch.Tensor and target.is_cpu):
                    target = to_device(target, device)
                prediction = forward(inputs)
                loss = loss_fn(prediction, target)
                if optimizer is not None and loss.requires_grad:
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                add(loss, prediction, target)
                batches += 1
        if batches == 0:
            kind = "train" if training else "test"
            raise TrainingError(
                f"the {kind} loader yields no batch; check the data size, train_prop and batch_size "
                "(DataLoader drop_last drops a last partial batch)"
            )
        loss_sum, correct, total, nonbinary = totals.finish()
        self.accuracy = totals.rule
        if self._auto and self.accuracy == "threshold" and nonbinary:
            self.accuracy = "none"  # targets are not all 0/1 after all: no accuracy for this run
        accuracy = None
        if self.accuracy != "none" and total:
            accuracy = 100.0 * correct / total
        return loss_sum / batches, accuracy

    def fit(
        self,
        train_loader: Iterable[Any],
        test_loader: Iterable[Any],
        epochs: int,
        checkpoint: Callable[[], None] | None = None,
        checkpoint_every: int | None = None,
    ) -> TrainResult:
        """Train ``epochs`` more epochs; call ``checkpoint()`` every ``checkpoint_every`` epochs.

        Raises TrainingError (from a callback or the loop); ``self.history`` keeps the epochs done.
        """
        for callback in self.callbacks:
            callback.on_train_begin(self.history)
        for _ in range(epochs):
            epoch = len(self.history) + 1
            start = time.perf_counter()
            train_loss, train_acc = self.run_epoch(train_loader, training=True)
            test_loss, test_acc = self.run_epoch(test_loader, training=False)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "test_loss": test_loss,
                "train_acc": train_acc,
                "test_acc": test_acc,
                "seconds": time.perf_counter() - start,
            }
            self.history.append(row)
            try:
                for callback in self.callbacks:
                    callback.on_epoch_end(epoch, dict(row))
            except StopTraining as stop:
                return TrainResult(self.history, True, stop.reason or f"stopped at epoch {epoch}")
            if checkpoint is not None and checkpoint_every and epoch % checkpoint_every == 0:
                checkpoint()
        return TrainResult(self.history, False, None)


