"""The worker side's test material: run tasks over the worker tests' class file, tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mosaic.exec.training.run import RunTask
from tests.helpers import CLASSES_WORKER


def section(type_: str, class_name: str, path: Path | str = CLASSES_WORKER, **params: Any) -> dict[str, Any]:
    """One pipeline section (of the worker tests' class file unless ``path`` says otherwise)."""
    return {"type": type_, "class": class_name, "path_to_class": str(path), **params}


def make_task(run_files: Path, pipeline: list[dict], *, run_id: int = 1, epochs: int = 2,
              config_dir: Path | None = None, resume: bool = False, attempt: int = 0, legacy_history: bool = False,
              **process: Any) -> RunTask:
    """A run task with the usual PROCESS values (``process`` overrides them)."""
    settings = {
        "lr": 1e-2, "epochs": epochs, "loss_function": "MSELoss", "class_loss_function": None,
        "path_to_class_loss_function": None, "optimizer": "Adam", "seed": 7, "accuracy": "auto",
        "checkpoint_every": None, "patience": None,
    }
    settings.update(process)
    return RunTask(
        run_id=run_id, attempt=attempt, sweep_id=1, pipeline=pipeline, process=settings,
        config_dir=str(config_dir or CLASSES_WORKER.parent), run_files=str(run_files), epochs=epochs, resume=resume,
        legacy_history=legacy_history,
    )


def signed_pipeline() -> list[dict]:
    """Regression on signed targets through a model with dropout (shuffling and RNG states matter)."""
    return [
        section("dataset", "dataset_signed", batch_size=8, data_size=40),
        section("model", "mlp_dropout", width="6"),
    ]


def losses(history: list[dict]) -> list[tuple]:
    """Each epoch's losses and accuracies (no timings)."""
    return [(r["epoch"], r["train_loss"], r["test_loss"], r["train_acc"], r["test_acc"]) for r in history]


class Affine(torch.nn.Module):
    """A one-layer model with the pipeline's forward signature."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def forward(self, data: torch.Tensor, run_info: dict, module_info: dict) -> torch.Tensor:
        return self.layer(data)


def tiny_loaders() -> tuple[Any, Any]:
    """24 seeded samples of two inputs and a 0/1 target: a shuffled train and a test loader."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 2, generator=g)
    y = (x.sum(1, keepdim=True) > 0).float()
    data = torch.utils.data.TensorDataset(x, y)
    make = torch.utils.data.DataLoader
    return make(data, batch_size=8, shuffle=True), make(data, batch_size=8)
