"""A real headless Chromium, for the tests that load Mosaic's live page as a user's browser does.

:func:`dump_dom` prints the page's DOM once its scripts ran (``--virtual-time-budget``: the
page's timers and fetches run in virtual time, and Chromium stops when the budget is spent or
nothing is left to do); :func:`screenshot` saves a PNG. Each starts a fresh browser with a
profile of its own under the test's temporary folder, and every call has a timeout. Tests
skip when no Chromium is installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

#: the longest one browser may take (start, load, scripts, exit)
BROWSER_TIMEOUT_S = 120
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


def chromium() -> str:
    """The browser's executable; the test is skipped without one."""
    for name in _NAMES:
        if found := shutil.which(name):
            return found
    pytest.skip("no Chromium installed (apt-get install -y chromium)")


def _run(args: list[str], profile_root: Path) -> subprocess.CompletedProcess[str]:
    profile = profile_root / f"chromium-{uuid.uuid4().hex[:8]}"
    done = subprocess.run([chromium(), *_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=BROWSER_TIMEOUT_S)
    shutil.rmtree(profile, ignore_errors=True)
    return done


def dump_dom(url: str, profile_root: Path, budget_ms: int = 5000) -> str:
    """The DOM of ``url`` after its scripts ran for ``budget_ms`` of virtual time."""
    done = _run(["--dump-dom", f"--virtual-time-budget={budget_ms}", url], profile_root)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def screenshot(url: str, target: Path, profile_root: Path, size: tuple[int, int] = (1280, 1500),
               budget_ms: int = 5000) -> Path:
    """A PNG of ``url`` (``size`` in CSS pixels) after its scripts ran."""
    done = _run([f"--screenshot={target}", f"--window-size={size[0]},{size[1]}",
                 f"--virtual-time-budget={budget_ms}", url], profile_root)
    assert done.returncode == 0 and target.is_file(), f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return target
