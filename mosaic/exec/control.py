"""Watching and steering sweeps from outside the driver: ``status`` and ``pause``.

A running driver keeps a heartbeat file in the store's control folder and polls it for a
pause request. ``pause`` writes the request and waits: the driver stops submitting,
saves the runs it had not started to the pipeline file (legacy list format) plus a
``<file>.mosaic.json`` sidecar for ``resume`` (store, sweep, config, run ids), marks them
``paused``, lets the running runs finish, and exits.

``mosaic run`` records its store in ``$MOSAIC_STATE_DIR/last_store`` (default
``~/.local/state/mosaic``), the default STORE of ``status`` and ``pause``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosaic.errors import ConfigError, RunError, UsageError
from mosaic.exec.live import RunProgress, live_progress
from mosaic.store.files import read_json as _read_json
from mosaic.store.files import write_json as _write_json
from mosaic.store.layout import last_store
from mosaic.store.reader import open_reader
from mosaic.store.status import FAILED, RunStatus
from mosaic.store.writer import Store
from mosaic.sweep import write_pipelines

#: A driver whose heartbeat is older than this is considered gone.
HEARTBEAT_STALE_S = 30.0


def _open(store: str | os.PathLike[str] | Store | None) -> Store:
    if isinstance(store, Store):
        return store
    return Store(store if store is not None else last_store())


# -- heartbeats ---------------------------------------------------------------------------
def write_heartbeat(store: Store, sweep_id: int, pid: int, progress: Mapping[int, tuple[int, int]] | None = None) -> None:
    """Say that the driver of ``sweep_id`` is alive (called about every half second).

    ``progress``: run id -> (last epoch, planned last epoch) of the runs training now.
    """
    info: dict[str, Any] = {"sweep_id": sweep_id, "pid": pid, "host": socket.gethostname(), "updated": time.time()}
    if progress:
        info["progress"] = {str(run_id): list(epochs) for run_id, epochs in progress.items()}
    _write_json(store.heartbeat(sweep_id), info)


def remove_heartbeat(store: Store, sweep_id: int) -> None:
    """The driver of ``sweep_id`` has ended."""
    store.heartbeat(sweep_id).unlink(missing_ok=True)


def live_sweeps(store: Store) -> list[int]:
    """Sweeps whose driver is running now."""
    alive = []
    for path in store.heartbeats():
        info = _read_json(path)
        if not info or time.time() - float(info.get("updated", 0)) > HEARTBEAT_STALE_S:
            continue
        if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", 0))):
            continue
        alive.append(int(info["sweep_id"]))
    return sorted(alive)


def driver_of(store: Store, sweep_id: int) -> str:
    """``pid N on HOST``: the driver of ``sweep_id`` as its heartbeat names it."""
    info = _read_json(store.heartbeat(sweep_id)) or {}
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


# -- pause requests -----------------------------------------------------------------------
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
    info = _read_json(claimed) or {}
    claimed.unlink(missing_ok=True)
    return PauseRequest(str(info.get("id", "")), Path(info.get("pipeline_file", "paused.json")))


def acknowledge_pause(store: Store, request: PauseRequest, *, sweep_id: int, paused: int = 0, running: int = 0, error: str | None = None) -> None:
    """Tell the waiting ``pause`` what the driver did."""
    info = {"sweep_id": sweep_id, "paused": paused, "running": running, "error": error, "pipeline_file": str(request.pipeline_file)}
    _write_json(store.pause_ack(request.id), info)


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
    _write_json(sidecar_path(target), {
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
    target = _open(store)
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
    _write_json(request, {"id": request_id, "pipeline_file": str(file), "requested": time.time()})
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
    ack = _read_json(ack_path) or {}
    ack_path.unlink(missing_ok=True)
    if ack.get("error"):
        raise UsageError(f"the sweep could not pause: {ack['error']}")
    sweep_id = int(ack["sweep_id"])
    while sweep_id in live_sweeps(target) and (deadline is None or time.monotonic() < deadline):
        time.sleep(0.1)
    finished = sweep_id not in live_sweeps(target)
    return PauseResult(target.path, file, sweep_id, int(ack.get("paused", 0)), int(ack.get("running", 0)), finished)


# -- status -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunState:
    """The latest state of one run."""

    run_id: int
    status: str
    pipeline: str
    return_status: str | None
    error: str | None
    attempt: int
    sweep_id: int | None


@dataclass(frozen=True)
class StatusReport:
    """Every run of a store by status; ``render()`` is the legacy ``mosaic_status`` text."""

    store: Path
    runs: tuple[RunState, ...]
    live: tuple[int, ...] = field(default=())
    progress: Mapping[int, RunProgress] = field(default_factory=dict)  # running runs: epoch k/N, losses

    def of(self, *statuses: str) -> list[RunState]:
        """The runs whose latest status is one of ``statuses``."""
        return [r for r in self.runs if r.status in statuses]

    @property
    def stale(self) -> list[RunState]:
        """Runs left pending or running by a driver that is gone."""
        return [r for r in self.of(RunStatus.PENDING, RunStatus.RUNNING) if r.sweep_id not in self.live]

    def render(self) -> str:
        """Done (losses, time), Error (pipeline + last traceback line), Running, Pending."""
        stale = {r.run_id for r in self.stale}
        lines = ["Done"]
        lines += [f"\t[{r.run_id}] {r.return_status or ''}" for r in self.of(RunStatus.DONE)]
        lines.append("Error")
        for r in self.of(*FAILED):
            label = f" ({RunStatus.SYSTEM_FAILURE})" if r.status == RunStatus.SYSTEM_FAILURE else ""
            lines.append(f"\t[{r.run_id}] {r.pipeline}{label}")
            lines.append(f"\t\t{_last_line(r.error or r.return_status or '')}")
        lines.append("Running")
        lines += [f"\t[{r.run_id}] {r.pipeline}{self._progress(r.run_id)}" for r in self.of(RunStatus.RUNNING) if r.run_id not in stale]
        lines.append("Pending")
        lines += [f"\t[{r.run_id}] {r.pipeline}" for r in self.of(RunStatus.PENDING) if r.run_id not in stale]
        for title, runs in (("Paused", self.of(RunStatus.PAUSED)), ("Interrupted", [*self.of(RunStatus.INTERRUPTED), *self.stale])):
            if runs:
                lines.append(title)
                lines += [f"\t[{r.run_id}] {r.pipeline}" for r in sorted(runs, key=lambda r: r.run_id)]
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        lines.append(f"({len(self.runs)} runs in {self.store}{': ' + summary if summary else ''})")
        return "\n".join(lines)

    def _progress(self, run_id: int) -> str:
        progress = self.progress.get(run_id)
        return f"  ({progress.render()})" if progress else ""


def latest_runs(store: str | os.PathLike[str] | Store, ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The latest runs row of every run (or of ``ids``), with its sweep_id, by run id."""
    with open_reader(_open(store)) as reader:
        return reader.latest_runs(ids)


def status(store: str | os.PathLike[str] | None = None) -> StatusReport:
    """The runs of ``store`` (default: the last one ``mosaic run`` used) by status."""
    target = _open(store)
    live = tuple(live_sweeps(target))
    with open_reader(target) as reader:
        rows = reader.latest_runs()
        runs = tuple(
            RunState(r["run_id"], r["status"], r["pipeline"] or "", r["return_status"], r["error"], r["attempt"] or 0, r["sweep_id"])
            for r in rows
        )
        running = [r.run_id for r in runs if r.status == RunStatus.RUNNING and r.sweep_id in live]
        progress = live_progress(reader, target, running, live)
    return StatusReport(target.path, runs, live, progress)


def watch_status(store: str | os.PathLike[str] | None = None, interval: float = 2.0,
                 sleep: Callable[[float], Any] = time.sleep) -> Iterator[StatusReport]:
    """:func:`status` every ``interval`` seconds while a driver writes the store.

    Yields at least one report; the last one is taken when no live driver is left, so the
    loop ends by itself when the sweep ends (or at once when none is running).
    """
    if not interval > 0:
        raise UsageError(f"--interval must be a positive number of seconds; got {interval!r}")
    target = _open(store)
    while True:
        report = status(target)
        yield report
        if not report.live:
            return
        sleep(interval)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
