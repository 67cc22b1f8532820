"""One run on a worker: :func:`execute_run` takes a picklable :class:`RunTask` (built by the
driver), builds the run, trains it and returns a :class:`RunOutcome`. It never raises for a
failure of user code: that run ends as ``error`` with its traceback, and the sweep goes on
(DESIGN §4). The run's stdout/stderr and Mosaic's own notes go to its log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import torch

from mosaic.errors import PipelineError, RunFailure
from mosaic.exec.training import metrics
from mosaic.exec.training.build import (
    build_chain,
    build_data,
    build_loss,
    build_optimizer,
    data_count,
    seed_everything,
    torch_device,
)
from mosaic.exec.training.callbacks import default_callbacks
from mosaic.exec.training.checkpoints import load_checkpoint, save_checkpoint
from mosaic.exec.training.loop import Trainer
from mosaic.exec.training.user_classes import import_class
from mosaic.exec.wire import transfer
from mosaic.exec.wire.callbacks import Callback
from mosaic.exec.wire.task import RunOutcome, RunTask, run_seed, worker_label
from mosaic.store import layout
from mosaic.store.run_files import write_history
from mosaic.store.status import RunStatus

__all__ = ["PipelineError", "RunOutcome", "RunTask", "execute_run", "run_seed"]



def execute_run(task: RunTask, callbacks: Sequence[Callback] = ()) -> RunOutcome:
    """Train one run (or continue it when ``task.resume``) and report what happened.

    Never raises for a failure in user code: the outcome then has status ``error`` and the
    traceback (or Mosaic's own one-line explanation). ``callbacks`` run after the built-in
    ones and those of the task. stdout/stderr go to ``<run_files>/output_<run_id>.log``
    (where that is, and whether the files come back in the outcome: :mod:`mosaic.exec.wire.transfer`);
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
        task.run_id, task.attempt, RunStatus.ERROR, None, [], None, seed=run_seed(task.process.get("seed"), task.run_id),
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
            outcome.status = RunStatus.DONE
        except RunFailure as exc:
            outcome.error = outcome.message = str(exc)
        except (Exception, SystemExit) as exc:
            outcome.error = traceback.format_exc()
            outcome.message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            if device.startswith("cuda") and torch.cuda.is_available():
                torch.cuda.empty_cache()
        end = f"failed: {outcome.error}" if outcome.status == RunStatus.ERROR else f"done: {len(outcome.history)} epochs"
        log.write(f"=== run {task.run_id} {end}{'; ' + outcome.message if outcome.message and outcome.status == RunStatus.DONE else ''}\n")
    return outcome


def _train_run(task: RunTask, outcome: RunOutcome, started: float, extra: Sequence[Callback], note: Callable[[str], None]) -> None:
    process = task.process
    device = torch_device(outcome.device)
    # import before seeding: module-level code runs on a process's first import only
    classes = [import_class(str(s["path_to_class"]), str(s["class"]), task.config_dir, task.sources) for s in task.pipeline]
    if process.get("class_loss_function") and process.get("path_to_class_loss_function"):
        import_class(str(process["path_to_class_loss_function"]), process["class_loss_function"], task.config_dir, task.sources)
    seed_everything(outcome.seed)
    n_data = data_count(task, classes)
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


def run_notes(log: TextIO) -> Callable[[str], None]:
    """A writer of ``mosaic: <note>`` lines into a run's log (what Mosaic did instead of
    failing), each distinct note once per run."""
    seen: set[str] = set()

    def note(text: str) -> None:
        if text not in seen:
            seen.add(text)
            log.write(f"mosaic: {text}\n")

    return note
