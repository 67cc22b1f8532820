"""A driver's heartbeat: the file in a store's control folder that says a driver is alive, and
how far its running runs are. Written here (about every half second, by the sweep) and read
here (by ``status``, ``pause``, ``resume``), so its fields live in one place.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any

from mosaic.store.files import read_json, write_json
from mosaic.store.writer import Store

#: A driver whose heartbeat is older than this is considered gone.
HEARTBEAT_STALE_S = 30.0


def write_heartbeat(store: Store, sweep_id: int, pid: int, progress: Mapping[int, tuple[int, int]] | None = None) -> None:
    """Say that the driver of ``sweep_id`` is alive (called about every half second).

    ``progress``: run id -> (last epoch, planned last epoch) of the runs training now.
    """
    info: dict[str, Any] = {"sweep_id": sweep_id, "pid": pid, "host": socket.gethostname(), "updated": time.time()}
    if progress:
        info["progress"] = {str(run_id): list(epochs) for run_id, epochs in progress.items()}
    write_json(store.heartbeat(sweep_id), info)


def remove_heartbeat(store: Store, sweep_id: int) -> None:
    """The driver of ``sweep_id`` has ended."""
    store.heartbeat(sweep_id).unlink(missing_ok=True)


def live_sweeps(store: Store) -> list[int]:
    """Sweeps whose driver is running now."""
    alive = []
    for path in store.heartbeats():
        info = read_json(path)
        if not info or time.time() - float(info.get("updated", 0)) > HEARTBEAT_STALE_S:
            continue
        if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", 0))):
            continue
        alive.append(int(info["sweep_id"]))
    return sorted(alive)


def driver_of(store: Store, sweep_id: int) -> str:
    """``pid N on HOST``: the driver of ``sweep_id`` as its heartbeat names it."""
    info = read_json(store.heartbeat(sweep_id)) or {}
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def planned_epochs(store: Store, sweeps: Iterable[int]) -> dict[int, int]:
    """run id -> planned last epoch, from the heartbeats of the drivers of ``sweeps``
    (the ``progress`` :func:`write_heartbeat` wrote)."""
    planned: dict[int, int] = {}
    for sweep_id in sweeps:
        info = read_json(store.heartbeat(sweep_id)) or {}
        for run_id, pair in (info.get("progress") or {}).items():
            with contextlib.suppress(TypeError, ValueError, IndexError):
                planned[int(run_id)] = int(pair[1])
    return planned
