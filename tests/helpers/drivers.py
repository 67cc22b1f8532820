"""A ``mosaic`` command as a real subprocess, killed with SIGKILL when a test says, and waits with deadlines.

The driver-fault tests kill a driver mid-sweep this way (its worker processes go with its
session); every wait here has a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.helpers import BIN

#: the longest a test waits for a driver to reach a state, or for a command to end (seconds)
DEADLINE_S = 120


@contextmanager
def driver(*args: Any, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """A ``mosaic`` subprocess in its own session; whatever is left of it is killed at the end.

    SIGINT is reset to its default in the child: a test started in the background of a
    non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    """
    process = subprocess.Popen(
        [str(BIN / "mosaic"), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, **(env or {})},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)
        with_group_killed(process.pid)


def with_group_killed(pgid: int) -> None:
    """Kill what the driver's session left (its worker processes) and give them time to go."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return


def mosaic_cli(*args: Any, timeout: float = DEADLINE_S) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mosaic"), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen | None = None, poll: float = 0.1) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the driver ended (rc {process.returncode}) before {what}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)
