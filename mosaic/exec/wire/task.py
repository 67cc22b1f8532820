"""What the driver sends to a worker and gets back: :class:`RunTask`, :class:`RunOutcome`.

Torch-free, so that the driver builds tasks, reads outcomes and derives seeds without
loading torch; :func:`mosaic.exec.cluster.entry.execute_batch` runs tasks on a worker
through :func:`mosaic.exec.training.run.execute_run`.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mosaic.config import Process
from mosaic.exec.wire.callbacks import Callback
from mosaic.exec.wire.sources import SourceBundle
from mosaic.exec.wire.transfer import RunFiles
from mosaic.store.status import RunStatus


@dataclass
class RunTask:
    """Everything a worker needs to train one run; picklable, built by the driver."""

    run_id: int
    attempt: int
    sweep_id: int
    pipeline: list[dict[str, Any]]
    process: Process | Mapping[str, Any]  # the [PROCESS] section (a Mapping in tests)
    config_dir: str
    run_files: str
    epochs: int
    resume: bool = False
    device: str | None = None
    until: int | None = None  # set: train until the history (checkpoint's included) holds this many epochs
    callbacks: list[Callback] = field(default_factory=list)  # extra callbacks, after the built-ins
    sources: SourceBundle | None = None  # the user's class files, for workers that cannot see them
    files: RunFiles | None = None  # where the run files go (see mosaic.exec.wire.transfer)
    legacy_history: bool = False  # also write the original's history_<id>.pt ([MONITOR] legacy_history)

    def device_here(self) -> str:
        """The device this run trains on in this process: its own, else the worker's."""
        return self.device or os.environ.get("MOSAIC_DEVICE", "cpu")


@dataclass
class RunOutcome:
    """What one attempt of one run produced."""

    run_id: int
    attempt: int
    status: RunStatus  # DONE or ERROR
    error: str | None
    history: list[dict[str, Any]]
    results: dict[str, Any] | None
    seed: int
    device: str
    worker: str
    stopped_early: bool = False
    message: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)  # run files for the driver to write (no shared disk)
    seconds: float = 0.0  # wall time of the attempt on its worker (sizes batches: mosaic.exec.driver.batching)


def worker_label() -> str:
    """``host:pid`` of this process: how outcomes, rows and events name a worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_seed(base_seed: int | None, run_id: int) -> int:
    """A run's seed, derived from the config's ``seed`` (None counts as 0) and the run id.

    Deterministic, so a run can be reproduced; different run ids (replicates) get different seeds.
    """
    digest = hashlib.sha256(f"mosaic:{0 if base_seed is None else int(base_seed)}:{int(run_id)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
