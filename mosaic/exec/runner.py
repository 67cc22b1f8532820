"""The worker side of one run: import user classes, build the chain, inject parameters, train.

:func:`execute_run` takes a picklable :class:`RunTask` (built by the driver) and returns a
:class:`RunOutcome`; it never raises for a failure of user code — that run ends as
``error`` with its traceback, and the sweep goes on (DESIGN §4).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import inspect
import os
import random
import socket
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mosaic.config import RESERVED
from mosaic.errors import PipelineError
from mosaic.exec import metrics, transfer
from mosaic.exec.loss import aligned
from mosaic.exec.notes import run_notes
from mosaic.exec.sources import SourceBundle, locate
from mosaic.exec.task import RunOutcome, RunTask, run_seed, worker_label
from mosaic.exec.train import (
    Callback,
    Chain,
    RunFailure,
    Trainer,
    default_callbacks,
    load_checkpoint,
    save_checkpoint,
)
from mosaic.store import layout
from mosaic.store.run_files import write_history

__all__ = ["PipelineError", "RunOutcome", "RunTask", "execute_run", "run_seed"]


# --- importing user classes -----------------------------------------------------------------

_import_lock = threading.RLock()
_modules: dict[tuple[str, int], types.ModuleType] = {}


def resolve_class_path(path_to_class: str, config_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a ``path_to_class`` points: absolute as is, else the config's folder first, then cwd."""
    raw = Path(os.path.expanduser(str(path_to_class)))
    candidates = [raw] if raw.is_absolute() else [Path(config_dir) / raw] if config_dir else []
    if not raw.is_absolute():
        candidates.append(Path.cwd() / raw)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = " and ".join(str(c) for c in candidates)
    raise PipelineError(f"class file '{path_to_class}' not found (looked at {looked}); fix path_to_class")


def import_class(path_to_class: str, class_name: str, config_dir: str | os.PathLike[str] | None = None, sources: SourceBundle | None = None) -> type:
    """Import ``class_name`` from a user's ``.py`` file (or its copy in ``sources``, see
    :func:`mosaic.exec.sources.locate`), once per process and file version.

    The module is cached by resolved path and modification time, so an edited file is
    imported again. It is registered in ``sys.modules`` (pickling and dataclasses need that)
    and its folder is on ``sys.path`` while it runs, so it can import its neighbours.
    """
    path = locate(sources, path_to_class) or resolve_class_path(path_to_class, config_dir)
    key = (str(path), path.stat().st_mtime_ns)
    with _import_lock:
        module = _modules.get(key)
        if module is None:
            module = _load_module(path)
            for old in [k for k in _modules if k[0] == key[0]]:
                del _modules[old]
            _modules[key] = module
    cls = getattr(module, class_name, None)
    if cls is None or not callable(cls):
        classes = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__)
        raise PipelineError(f"class '{class_name}' is not defined in {path}; classes there: {', '.join(classes) or 'none'}")
    return cls


def _load_module(path: Path) -> types.ModuleType:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"mosaic_user_{''.join(c if c.isalnum() else '_' for c in path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PipelineError(f"{path} cannot be imported as a Python module; give a .py file")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
    return module


def clear_import_cache() -> None:
    """Forget every imported user module (the next run imports the files again)."""
    with _import_lock:
        _modules.clear()


# --- constructor parameters -------------------------------------------------------------------

_SCALARS = {"int": int, "float": float, "bool": bool, "str": str}
_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _scalar_type(annotation: Any) -> type | None:
    """int/float/bool/str when the annotation is one of them (optionally ``| None``)."""
    if annotation in (int, float, bool, str):
        return annotation
    if isinstance(annotation, str):
        text = annotation.strip()
        if text.startswith("Optional[") and text.endswith("]"):
            text = text[len("Optional["):-1]
        parts = [p.strip() for p in text.split("|") if p.strip() not in ("None", "NoneType")]
        return _SCALARS.get(parts[0]) if len(parts) == 1 else None
    args = getattr(annotation, "__args__", None)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and rest[0] in (int, float, bool, str):
            return rest[0]
    return None


def coerce(value: Any, annotation: Any, where: str, name: str) -> Any:
    """Convert a config value to the parameter's annotated type (int, float, bool or str)."""
    kind = _scalar_type(annotation)
    if kind is None or value is None or type(value) is kind:
        return value
    if not isinstance(value, str | int | float | bool | np.generic):
        return value
    try:
        if kind is bool:
            return _BOOLS[str(value).strip().lower()]
        if kind is int:
            number = float(value) if isinstance(value, str) and not value.strip().lstrip("+-").isdigit() else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError(value)
            return int(number)
        if kind is float:
            return float(value)
        return str(value)
    except (KeyError, TypeError, ValueError, OverflowError):
        raise PipelineError(
            f"{where}: parameter '{name}' is annotated {kind.__name__} but its value is {value!r}; "
            f"give a {kind.__name__} in the section"
        ) from None


def instantiate(cls: type, section: Mapping[str, Any], run_info: Mapping[str, Any], where: str) -> Any:
    """Build ``cls`` with constructor parameters matched by name: ``run_info`` first, then the section.

    Reserved section keys (type, class, path_to_class, key, name) are never passed.
    Raises PipelineError naming the class and the parameter when a required one is missing.
    """
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return cls()
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in run_info:
            value = run_info[name]
        elif name in section and name not in RESERVED:
            value = section[name]
        elif param.default is not param.empty:
            continue
        else:
            given = [k for k in section if k not in RESERVED]
            raise PipelineError(
                f"{where}: missing constructor parameter '{name}'; add '{name} = ...' to the section or return "
                f"'{name}' from the info() of an earlier module (section has: {', '.join(given) or 'nothing'}; "
                f"run_info has: {', '.join(run_info) or 'nothing'})"
            )
        value = coerce(value, param.annotation, where, name)
        if param.kind is param.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[name] = value
    return cls(*args, **kwargs)


def _where(section: Mapping[str, Any]) -> str:
    label = section.get("name") or section.get("class")
    return f"class {section.get('class')} (section {label}, type {section.get('type')})"


def _info(obj: Any, where: str) -> dict[str, Any]:
    info = getattr(obj, "info", None)
    if not callable(info):
        return {}
    value = info()
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PipelineError(f"{where}: info() must return a dict, got {type(value).__name__}")
    return dict(value)


# --- seeds --------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (CUDA included)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --- building a run -------------------------------------------------------------------------------


def _data_count(task: RunTask, classes: Sequence[type]) -> int:
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


def _device(name: str) -> torch.device:
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
        where = _where(section)
        obj = instantiate(cls, section, run_info, where)
        data = obj.prepare(data, run_info, section)
        run_info.update(_info(obj, where))
    if not isinstance(data, list | tuple) or len(data) != 2:
        raise PipelineError(
            f"{_where(task.pipeline[len(classes) - 1])}: the last data_scheme class must return "
            f"(train_loader, test_loader) from prepare(); it returned {type(data).__name__}"
        )
    return data[0], data[1]


def build_chain(task: RunTask, classes: Sequence[type], first: int, run_info: dict[str, Any], device: torch.device) -> Chain:
    """Build the pipeline-scheme objects (moved to ``device``) from section ``first`` on."""
    chain = Chain([], [], [], run_info)
    for index in range(first, len(task.pipeline)):
        section = task.pipeline[index]
        where = _where(section)
        obj = instantiate(classes[index], section, run_info, where)
        if not callable(getattr(obj, "forward", None)):
            raise PipelineError(f"{where}: a pipeline_scheme class needs forward(self, data, run_info, module_info)")
        if isinstance(obj, torch.nn.Module):
            obj.to(device)
        run_info.update(_info(obj, where))
        chain.modules.append(obj)
        chain.sections.append(section)
        chain.indices.append(index)
    return chain


def build_loss(process: Mapping[str, Any], config_dir: str, run_info: Mapping[str, Any], device: torch.device, sources: SourceBundle | None = None) -> Any:
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


def build_optimizer(process: Mapping[str, Any], chain: Chain) -> torch.optim.Optimizer | None:
    """``torch.optim.<optimizer>`` over every trainable module's parameters (None when there are none)."""
    name = process.get("optimizer") or "Adam"
    cls = getattr(torch.optim, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
        raise PipelineError(f"optimizer '{name}' is not a torch.optim optimizer; e.g. Adam, SGD")
    params = chain.parameters()
    return cls(params, lr=float(process["lr"])) if params else None


# --- one run -------------------------------------------------------------------------------------


def execute_run(task: RunTask, callbacks: Sequence[Callback] = ()) -> RunOutcome:
    """Train one run (or continue it when ``task.resume``) and report what happened.

    Never raises for a failure in user code: the outcome then has status ``error`` and the
    traceback (or Mosaic's own one-line explanation). ``callbacks`` run after the built-in
    ones and those of the task. stdout/stderr go to ``<run_files>/output_<run_id>.log``
    (where that is, and whether the files come back in the outcome: :mod:`mosaic.exec.transfer`);
    the original's ``history_<id>.pt`` is written beside the checkpoint only with ``task.legacy_history``.
    """
    started = time.perf_counter()
    returned: dict[str, bytes] = {}
    with transfer.workspace(task.files, task.run_files, task.run_id, task.resume, returned) as folder:
        outcome = _execute(dataclasses.replace(task, run_files=str(folder)), callbacks)
    outcome.files = returned
    outcome.seconds = time.perf_counter() - started
    return outcome


def _execute(task: RunTask, callbacks: Sequence[Callback]) -> RunOutcome:
    started = time.perf_counter()
    device = task.device_here()
    outcome = RunOutcome(
        task.run_id, task.attempt, "error", None, [], None, seed=run_seed(task.process.get("seed"), task.run_id),
        device=device, worker=worker_label(),
    )
    try:
        Path(task.run_files).mkdir(parents=True, exist_ok=True)
        log = open(layout.log_path(task.run_files, task.run_id), "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    except OSError as exc:
        outcome.error = outcome.message = f"cannot write run files in {task.run_files}: {exc}"
        return outcome
    with log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        log.write(
            f"=== run {task.run_id} attempt {task.attempt} (sweep {task.sweep_id}) seed {outcome.seed} "
            f"device {device} worker {outcome.worker} epochs {task.epochs}{' resume' if task.resume else ''}\n"
        )
        try:
            _train_run(task, outcome, started, [*task.callbacks, *callbacks], run_notes(log))
            outcome.status = "done"
        except RunFailure as exc:
            outcome.error = outcome.message = str(exc)
        except (Exception, SystemExit) as exc:
            outcome.error = traceback.format_exc()
            outcome.message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            if device.startswith("cuda") and torch.cuda.is_available():
                torch.cuda.empty_cache()
        end = f"failed: {outcome.error}" if outcome.status == "error" else f"done: {len(outcome.history)} epochs"
        log.write(f"=== run {task.run_id} {end}{'; ' + outcome.message if outcome.message and outcome.status == 'done' else ''}\n")
    return outcome


def _train_run(task: RunTask, outcome: RunOutcome, started: float, extra: Sequence[Callback], note: Callable[[str], None]) -> None:
    process = task.process
    device = _device(outcome.device)
    # import before seeding: module-level code runs on a process's first import only
    classes = [import_class(str(s["path_to_class"]), str(s["class"]), task.config_dir, task.sources) for s in task.pipeline]
    if process.get("class_loss_function") and process.get("path_to_class_loss_function"):
        import_class(str(process["path_to_class_loss_function"]), process["class_loss_function"], task.config_dir, task.sources)
    seed_everything(outcome.seed)
    n_data = _data_count(task, classes)
    run_info: dict[str, Any] = {}
    train_loader, test_loader = build_data(task, classes[:n_data], run_info)
    chain = build_chain(task, classes, n_data, run_info, device)
    loss_fn = build_loss(process, task.config_dir, run_info, device, task.sources)
    optimizer = build_optimizer(process, chain)
    patience = process.get("patience")
    trainer = Trainer(
        chain, loss_fn, optimizer, device,
        accuracy=process.get("accuracy") or "auto",
        callbacks=[*default_callbacks(int(patience) if patience else None), *extra],
    )
    run_files = Path(task.run_files)
    ckpt = layout.checkpoint_path(run_files, task.run_id)
    prior_duration = 0.0
    if task.resume:
        if ckpt.is_file():
            saved = load_checkpoint(ckpt, chain, optimizer, note=note, lr=float(process["lr"]))  # a rerun may change lr
            trainer.history = [dict(row) for row in saved["history"]]
            trainer.accuracy = saved["accuracy"]
            prior_duration = float(saved["duration_s"])
        elif task.until is None:  # a run finished to its planned total may never have saved one
            outcome.message = f"no checkpoint at {ckpt}; trained from scratch"

    def duration() -> float:
        return prior_duration + time.perf_counter() - started

    def checkpoint() -> None:
        save_checkpoint(
            ckpt, chain, optimizer, note=note,
            model_path=lambda index: str(run_files / f"model_{task.run_id}_{index}"),
            extra={
                "run_id": task.run_id,
                "epoch": len(trainer.history),
                "history": trainer.history,
                "accuracy": trainer.accuracy,
                "duration_s": duration(),
                "seed": outcome.seed,
            },
        )

    every = process.get("checkpoint_every")
    more = int(task.epochs) if task.until is None else max(0, int(task.until) - len(trainer.history))
    if task.until is not None:
        note(f"training epochs {len(trainer.history) + 1}..{task.until} (the checkpoint held {len(trainer.history)})")
    try:
        result = trainer.fit(train_loader, test_loader, more, checkpoint, int(every) if every else None)
    finally:
        outcome.history = [dict(row) for row in trainer.history]
    checkpoint()
    if task.legacy_history:  # else 'mosaic export --history-dir' writes it from the store when asked
        write_history(layout.history_path(run_files, task.run_id), trainer.history)
    outcome.stopped_early = result.stopped_early
    if result.message:
        outcome.message = result.message
    outcome.results = summarize(outcome.history, chain.nb_params(), duration())


def summarize(history: Sequence[Mapping[str, Any]], nb_params: int, duration_s: float) -> dict[str, Any]:
    """The results row of a done run: last-epoch losses/accuracies, size, time and the metrics."""
    last = history[-1] if history else {}
    train = [float(row["train_loss"]) for row in history]
    test = [float(row["test_loss"]) for row in history]
    return {
        "train_loss": last.get("train_loss"),
        "test_loss": last.get("test_loss"),
        "train_acc": last.get("train_acc"),
        "test_acc": last.get("test_acc"),
        "nb_params": int(nb_params),
        "duration_s": float(duration_s),
        "epochs": len(history),
        **metrics.summary(train, test),
    }
