"""The epoch loop of one run: accuracy rules, callbacks, checkpoints (DESIGN §4, §6).

:class:`Chain` is a built pipeline (the pipeline-scheme objects, called in order),
:class:`Trainer` trains it epoch by epoch and keeps the history, and
:func:`save_checkpoint` / :func:`load_checkpoint` store and restore everything needed to
continue exactly where training stopped: model states, optimizer state, RNG states,
history. Callbacks see each epoch's row and may stop training (:class:`StopTraining`)
or fail the run (:class:`TrainingError`).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mosaic.errors import RunFailure, StopTraining, TrainingError  # noqa: F401 - RunFailure: re-exported
from mosaic.exec import epoch as epoch_totals
from mosaic.exec import tensor_pack
from mosaic.exec.accuracy import ACCURACY_RULES, accuracy_counts, resolve_accuracy  # noqa: F401 - re-exported
from mosaic.store.files import atomic_write

#: 2: the optimizer state packed (mosaic.exec.tensor_pack); 1 (read too): as torch gives it.
CHECKPOINT_FORMAT = 2


class Callback:
    """A hook into the epoch loop. Subclass it and override what you need.

    ``on_epoch_end`` may raise :class:`StopTraining` (stop, the run is done) or
    :class:`TrainingError` (the run fails with that message).
    """

    def on_train_begin(self, history: Sequence[dict[str, Any]]) -> None:
        """Called once before the first epoch of an attempt, with the epochs already trained."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Called after each epoch (1-based, counting earlier attempts) with its history row."""


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


# --- the chain and the loop ---------------------------------------------------------------


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

    def parameters(self) -> list[torch.nn.Parameter]:
        """Trainable parameters of every module that has ``parameters()``, each once."""
        seen: dict[int, torch.nn.Parameter] = {}
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
        targets are kept and reduced by :class:`~mosaic.exec.epoch.EpochTotals` once every
        few hundred batches (and at the end), which gives the same sums as reducing batch by batch: batch losses are added
        one by one in float64 in batch order, and correct counts are integers.
        """
        self.chain.train(training)
        totals = epoch_totals.EpochTotals(self)
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


# --- checkpoints ----------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """The states of Python's, numpy's and torch's (CPU and CUDA) random generators."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        # Python's 625 numbers as one tensor: torch.save spends ~5 us on each Python object
        "random": [version, torch.tensor(internal, dtype=torch.int64), py_gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put the random generators back in a state taken by :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["random"]
    if isinstance(internal, torch.Tensor):
        internal = internal.tolist()
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _defines(module: Any, name: str) -> bool:
    return callable(getattr(module, name, None))


def save_checkpoint(
    path: str | os.PathLike[str],
    chain: Chain,
    optimizer: torch.optim.Optimizer | None,
    model_path: Callable[[int], str],
    extra: dict[str, Any],
    note: Callable[[str], None] | None = None,
) -> Path:
    """Write model states, optimizer and RNG states plus ``extra`` (epoch, history...) atomically.

    A module with ``save_model``/``load_model`` saves itself to ``model_path(index)`` (no
    extension, the original's contract); a ``save_model`` that raises is reported through
    ``note`` and does not fail the run. Torch modules also keep their ``state_dict`` here, and
    other objects with ``parameters()`` their parameter tensors: resuming never depends on the
    user's ``load_model``. Everything saved loads with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    models = []
    for module, index in zip(chain.modules, chain.indices, strict=True):
        entry: dict[str, Any] = {"index": index, "save_model": None, "state_dict": None}
        if _defines(module, "save_model") and _defines(module, "load_model"):
            try:
                module.save_model(model_path(index))
                entry["save_model"] = model_path(index)
            except Exception as exc:  # the user's code: the checkpoint below is enough
                _note(note, f"save_model of {type(module).__name__} (pipeline module {index}) failed: "
                      f"{type(exc).__name__}: {exc}; the run's checkpoint keeps its state")
        if isinstance(module, torch.nn.Module):
            entry["state_dict"] = module.state_dict()
        elif _defines(module, "parameters"):
            entry["parameters"] = [p.detach().cpu().clone() for p in module.parameters()]
        models.append(entry)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "models": models,
        "optimizer": tensor_pack.pack(optimizer.state_dict()) if optimizer is not None else None,
        "rng": capture_rng(),
        **extra,
    }
    return _atomic_save(payload, path)


def _note(note: Callable[[str], None] | None, text: str) -> None:
    if note is not None:
        note(text)


def load_checkpoint(
    path: str | os.PathLike[str],
    chain: Chain,
    optimizer: torch.optim.Optimizer | None,
    note: Callable[[str], None] | None = None,
    lr: float | None = None,
) -> dict[str, Any]:
    """Restore models, optimizer and RNG states from a checkpoint; return its other entries.

    ``lr``: the learning rate to continue with (else the saved optimizer's).

    The user's ``load_model`` is called first (a failure is reported through ``note``, e.g.
    ``torch.load`` refusing a pickled module under ``weights_only=True``), then the saved
    ``state_dict`` / parameters restore the module whatever it did. Call it last, after
    everything is built: restoring the RNG states must be the final step.
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") not in (1, CHECKPOINT_FORMAT):
        raise TrainingError(f"{path}: unknown checkpoint format {payload.get('format')!r}; train the run again")
    entries = {entry["index"]: entry for entry in payload["models"]}
    for module, index in zip(chain.modules, chain.indices, strict=True):
        entry = entries.get(index)
        if entry is None:
            raise TrainingError(f"{path}: no saved state for pipeline module {index}; was the pipeline changed?")
        if entry["save_model"] is not None and _defines(module, "load_model"):
            try:
                module.load_model(entry["save_model"])
            except Exception as exc:  # the user's code: the state below restores the module
                restored = entry["state_dict"] is not None or entry.get("parameters") is not None
                _note(note, f"load_model of {type(module).__name__} (pipeline module {index}) failed: "
                      f"{type(exc).__name__}: {exc}; "
                      + ("restored from the run's checkpoint instead" if restored else "its own state is not restored"))
        if entry["state_dict"] is not None and isinstance(module, torch.nn.Module):
            module.load_state_dict(entry["state_dict"])
        if entry.get("parameters") is not None:  # parameters() but neither nn.Module nor save_model
            with torch.no_grad():
                for param, saved in zip(module.parameters(), entry["parameters"], strict=True):
                    param.copy_(saved)
    if optimizer is not None and payload["optimizer"] is not None:
        saved = payload["optimizer"]
        optimizer.load_state_dict(tensor_pack.unpack(saved) if payload["format"] >= 2 else saved)
        for group in optimizer.param_groups if lr is not None else ():
            group["lr"] = lr
    restore_rng(payload["rng"])
    return {k: v for k, v in payload.items() if k not in ("format", "models", "optimizer", "rng")}


def _atomic_save(obj: Any, path: Path) -> Path:
    """torch.save under a temporary name, then rename: a reader never sees half a file."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
