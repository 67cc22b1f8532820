"""What the driver sends to a worker and gets back: :class:`RunTask`, :class:`RunOutcome`.

Kept apart from :mod:`mosaic.exec.runner` so that the driver builds tasks, reads outcomes
and derives seeds without importing torch (about a second of CPU on the driver while the
workers start); :func:`execute` runs a task on a worker through the runner.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mosaic.exec.train import Callback


@dataclass
class RunTask:
    """Everything a worker needs to train one run; picklable, built by the driver."""

    run_id: int
    attempt: int
    sweep_id: int
    pipeline: list[dict[str, Any]]
    process: dict[str, Any]
    config_dir: str
    run_files: str
    epochs: int
    resume: bool = False
    device: str | None = None
    callbacks: list[Callback] = field(default_factory=list)  # extra callbacks, after the built-ins


@dataclass
class RunOutcome:
    """What one attempt of one run produced."""

    run_id: int
    attempt: int
    status: str  # "done" or "error"
    error: str | None
    history: list[dict[str, Any]]
    results: dict[str, Any] | None
    seed: int
    device: str
    worker: str
    stopped_early: bool = False
    message: str | None = None


def run_seed(base_seed: int | None, run_id: int) -> int:
    """A run's seed, derived from the config's ``seed`` (None counts as 0) and the run id.

    Deterministic, so a run can be reproduced; different run ids (replicates) get different seeds.
    """
    digest = hashlib.sha256(f"mosaic:{0 if base_seed is None else int(base_seed)}:{int(run_id)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def execute(task: RunTask) -> RunOutcome:
    """Train ``task`` on this process (a worker): :func:`mosaic.exec.runner.execute_run`."""
    from mosaic.exec.runner import execute_run

    return execute_run(task)
