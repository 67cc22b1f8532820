"""Building one run on a worker: seeds, data, the chain of models, the loss and the optimizer
(DESIGN §4), from the run's pipeline and its PROCESS values."""

from __future__ import annotations

import inspect
import random
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mosaic.config import Process
from mosaic.errors import PipelineError
from mosaic.exec.training.loop import Chain
from mosaic.exec.training.loss import aligned
from mosaic.exec.training.user_classes import import_class, info_of, instantiate, where_of
from mosaic.exec.wire.sources import SourceBundle
from mosaic.exec.wire.task import RunTask


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (CUDA included)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)



def data_count(task: RunTask, classes: Sequence[type]) -> int:
    scheme = task.process.get("data_scheme")
    if scheme:
        types_ = [t.strip() for t in scheme.split(",")] if isinstance(scheme, str) else list(scheme)
        count = sum(1 for s in task.pipeline if s.get("type") in types_)
    else:  # leading classes that define prepare()
        count = 0
        while count < len(classes) and callable(getattr(classes[count], "prepare", None)):
            count += 1
    if count == 0:
        raise PipelineError("the pipeline has no data_scheme class: its first class must define prepare()")
    if count == len(task.pipeline):
        raise PipelineError("the pipeline has no pipeline_scheme class (a model with forward()) after its data classes")
    return count


def torch_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PipelineError(f"'{name}' is not a torch device ({exc}); use cpu or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PipelineError(f"device {name} was asked for but CUDA is not available on {socket.gethostname()}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise PipelineError(f"device {name} does not exist: {torch.cuda.device_count()} CUDA device(s) here")
    return device


def build_data(task: RunTask, classes: Sequence[type], run_info: dict[str, Any]) -> tuple[Any, Any]:
    """Run the data scheme; return ``(train_loader, test_loader)`` from the last data class."""
    data: Any = None
    for section, cls in zip(task.pipeline[: len(classes)], classes, strict=True):
        where = where_of(section)
        obj = instantiate(cls, section, run_info, where)
        data = obj.prepare(data, run_info, section)
        run_info.update(info_of(obj, where))
    if not isinstance(data, list | tuple) or len(data) != 2:
        raise PipelineError(
            f"{where_of(task.pipeline[len(classes) - 1])}: the last data_scheme class must return "
            f"(train_loader, test_loader) from prepare(); it returned {type(data).__name__}"
        )
    return data[0], data[1]


def build_chain(task: RunTask, classes: Sequence[type], first: int, run_info: dict[str, Any], device: torch.device) -> Chain:
    """Build the pipeline-scheme objects (moved to ``device``) from section ``first`` on."""
    chain = Chain([], [], [], run_info)
    for index in range(first, len(task.pipeline)):
        section = task.pipeline[index]
        where = where_of(section)
        obj = instantiate(classes[index], section, run_info, where)
        if not callable(getattr(obj, "forward", None)):
            raise PipelineError(f"{where}: a pipeline_scheme class needs forward(self, data, run_info, module_info)")
        if isinstance(obj, torch.nn.Module):
            obj.to(device)
        run_info.update(info_of(obj, where))
        chain.modules.append(obj)
        chain.sections.append(section)
        chain.indices.append(index)
    return chain


def build_loss(process: Process | Mapping[str, Any], config_dir: str, run_info: Mapping[str, Any], device: torch.device, sources: SourceBundle | None = None) -> Any:
    """``torch.nn.<loss_function>()`` or the user's class_loss_function on ``device``, in an AlignedLoss."""
    if process.get("class_loss_function"):
        name = process["class_loss_function"]
        path = process.get("path_to_class_loss_function")
        if not path:
            raise PipelineError(f"class_loss_function {name} has no path_to_class_loss_function; add it to [PROCESS]")
        loss = instantiate(import_class(str(path), name, config_dir, sources), {}, run_info, f"loss class {name}")
    else:
        name = process.get("loss_function") or ""
        cls = getattr(torch.nn, name, None)
        if not inspect.isclass(cls):
            raise PipelineError(f"loss_function '{name}' is not a torch.nn class; e.g. MSELoss, CrossEntropyLoss")
        loss = cls()
    if isinstance(loss, torch.nn.Module):
        loss.to(device)
    return aligned(loss)


def build_optimizer(process: Process | Mapping[str, Any], chain: Chain) -> torch.optim.Optimizer | None:
    """``torch.optim.<optimizer>`` over every trainable module's parameters (None when there are none)."""
    name = process.get("optimizer") or "Adam"
    cls = getattr(torch.optim, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
        raise PipelineError(f"optimizer '{name}' is not a torch.optim optimizer; e.g. Adam, SGD")
    params = chain.parameters()
    # issubclass narrows ``cls`` to type[Optimizer], whose __init__ has no lr (its subclasses' have)
    return cls(params, lr=float(process["lr"])) if params else None  # type: ignore[call-arg]


