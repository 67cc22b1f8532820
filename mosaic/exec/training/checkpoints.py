"""A run's checkpoint: everything needed to continue exactly where training stopped (model
states, optimizer state packed by :mod:`~mosaic.exec.training.tensor_pack`, RNG states, and
the history and other entries the caller adds), written atomically, loadable with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from mosaic.errors import TrainingError
from mosaic.exec.training import tensor_pack
from mosaic.exec.training.loop import Chain
from mosaic.store.files import atomic_write

#: 2: the optimizer state packed (mosaic.exec.training.tensor_pack); 1 (read too): as torch gives it.
CHECKPOINT_FORMAT = 2


def capture_rng() -> dict[str, Any]:
    """The states of Python's, numpy's and torch's (CPU and CUDA) random generators."""
    # the legacy (default) form: a tuple, not the dict of legacy=False
    kind, keys, pos, has_gauss, gauss = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
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
