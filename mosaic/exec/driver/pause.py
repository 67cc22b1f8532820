"""Pausing a sweep from outside its driver: ``mosaic pause``.

A running driver polls its store for a pause request (:func:`claim_pause`). ``pause`` writes
the request and waits: the driver stops submitting, saves the runs it had not started to the
pipeline file (legacy list format) plus a ``<file>.mosaic.json`` sidecar for ``resume``
(store, sweep, config, run ids), marks them ``paused``, lets the running runs finish, and
exits. ``mosaic run`` records its store in ``$MOSAIC_STATE_DIR/last_store`` (default
``~/.local/state/mosaic``), the default STORE of ``pause``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mosaic.errors import ConfigError, RunError, UsageError
from mosaic.exec.driver.heartbeat import live_sweeps
from mosaic.store.files import read_json, write_json
from mosaic.store.writer import Store, store_at
from mosaic.sweep import write_pipelines


@dataclass(frozen=True)
class PauseRequest:
    """A pause asked by ``mosaic pause`` and claimed by one driver."""

    id: str
    pipeline_file: Path


def claim_pause(store: Store, sweep_id: int) -> PauseRequest | None:
    """Take the pending pause request, if any (only one driver gets it)."""
    request = store.pause_request
    if not request.exists():
        return None
    claimed = store.pause_claim(sweep_id)
    try:
        os.rename(request, claimed)
    except FileNotFoundError:
        return None
    info = read_json(claimed) or {}
    claimed.unlink(missing_ok=True)
    return PauseRequest(str(info.get("id", "")), Path(info.get("pipeline_file", "paused.json")))


def acknowledge_pause(store: Store, request: PauseRequest, *, sweep_id: int, paused: int = 0, running: int = 0, error: str | None = None) -> None:
    """Tell the waiting ``pause`` what the driver did."""
    info = {"sweep_id": sweep_id, "paused": paused, "running": running, "error": error, "pipeline_file": str(request.pipeline_file)}
    write_json(store.pause_ack(request.id), info)


def write_pause_file(
    path: str | os.PathLike[str],
    pipelines: Sequence[list[dict[str, Any]]],
    *,
    store: Path,
    sweep_id: int,
    config: Any,
    runs: list[dict[str, Any]],
) -> Path:
    """Write the paused pipelines (legacy list) and the ``<file>.mosaic.json`` sidecar."""
    target = write_pipelines(pipelines, path)
    write_json(sidecar_path(target), {
        "format": 1,
        "store": str(Path(store).resolve()),
        "sweep_id": sweep_id,
        "config_path": str(config.path),
        "config": config.text,
        "runs": runs,
    })
    return target


def sidecar_path(pipeline_file: str | os.PathLike[str]) -> Path:
    """``<pipeline_file>.mosaic.json``."""
    return Path(f"{pipeline_file}.mosaic.json")


def read_sidecar(pipeline_file: str | os.PathLike[str]) -> dict[str, Any]:
    """What ``pause`` recorded beside a pipeline file ({} for a file pause did not write)."""
    path = sidecar_path(pipeline_file)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg}); delete it and give --store and --config") from None
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class PauseResult:
    """What ``pause`` did."""

    store: Path
    pipeline_file: Path
    sweep_id: int | None
    paused: int
    running: int
    finished: bool

    def render(self) -> str:
        """One paragraph for the CLI."""
        if self.sweep_id is None:
            return f"pause requested on {self.store}; the running sweep will save its runs not started in {self.pipeline_file}"
        state = "have finished" if self.finished else "are still finishing"
        return (
            f"sweep {self.sweep_id} paused: {self.paused} runs not started saved in {self.pipeline_file}; "
            f"{self.running} running runs {state}.\ncontinue with: mosaic resume {self.pipeline_file}"
        )


def pause(
    store: str | os.PathLike[str] | None,
    pipeline_file: str | os.PathLike[str],
    *,
    wait: bool = True,
    timeout: float | None = None,
) -> PauseResult:
    """Pause the sweep running on ``store`` (default: the last one used).

    The driver stops submitting, writes the runs it has not started to ``pipeline_file``
    and marks them paused. With ``wait`` this returns once the running runs have finished
    (or ``timeout`` seconds passed); without it, as soon as the request is written.
    """
    target = store_at(store)
    file = Path(pipeline_file).resolve()
    if file.suffix != ".json":
        raise UsageError(f"{pipeline_file}: a pipeline file must end in .json; e.g. {file.with_suffix('.json').name}")
    if not file.parent.is_dir():
        raise UsageError(f"{pipeline_file}: folder {file.parent} does not exist; create it first")
    if not live_sweeps(target):
        raise RunError(f"{target.path}: no sweep is running on this store; nothing to pause")
    request = target.pause_request
    if request.exists():
        raise UsageError(f"{target.path}: a pause is already pending ({request}); wait for it or delete that file")
    request_id = uuid.uuid4().hex
    write_json(request, {"id": request_id, "pipeline_file": str(file), "requested": time.time()})
    if not wait:
        return PauseResult(target.path, file, None, 0, 0, False)
    ack_path = target.pause_ack(request_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    while not ack_path.exists():
        if not live_sweeps(target) and request.exists():
            request.unlink(missing_ok=True)
            raise RunError(f"{target.path}: the sweep ended before it saw the pause; nothing paused")
        if deadline is not None and time.monotonic() > deadline:
            return PauseResult(target.path, file, None, 0, 0, False)
        time.sleep(0.1)
    ack = read_json(ack_path) or {}
    ack_path.unlink(missing_ok=True)
    if ack.get("error"):
        raise UsageError(f"the sweep could not pause: {ack['error']}")
    sweep_id = int(ack["sweep_id"])
    while sweep_id in live_sweeps(target) and (deadline is None or time.monotonic() < deadline):
        time.sleep(0.1)
    finished = sweep_id not in live_sweeps(target)
    return PauseResult(target.path, file, sweep_id, int(ack.get("paused", 0)), int(ack.get("running", 0)), finished)
