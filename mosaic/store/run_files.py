"""A sweep's run files on the driver's side: checkpoints, logs, legacy history files.

Workers that see the driver's ``run_files_path`` (the same machine, or a shared mount) write
there themselves. To tell, the driver puts a fresh token in the folder's marker file
(:func:`mark`) and sends it with each task; a worker that reads the same token back
(:func:`sees`) writes in place. Any other worker trains in a folder of its own and sends its
run's files back with the result; the driver writes them here (:func:`receive`): atomically,
a log appended to the earlier attempts' log. :func:`read` gives a file's bytes to send out
again (a checkpoint for ``rerun``/``resume``). :func:`write_history` writes the original's
``history_<id>.pt``, for a run (``[MONITOR] legacy_history``) and for ``mosaic export
--history-dir`` alike.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mosaic.errors import RunError
from mosaic.store import layout
from mosaic.store.files import atomic_write


def mark(run_files: str | os.PathLike[str]) -> str:
    """Create the folder if needed and write a new token in its marker; returns the token."""
    folder = Path(run_files)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(8)
        atomic_write(layout.run_files_marker(folder), token)
    except OSError as exc:
        raise RunError(f"cannot write run files in {folder}: {exc}; fix run_files_path in [PROCESS]") from None
    return token


def sees(run_files: str | os.PathLike[str], token: str) -> bool:
    """True when this process sees the folder the driver marked with ``token``."""
    try:
        return layout.run_files_marker(run_files).read_text(encoding="utf-8").strip() == token
    except OSError:
        return False


def receive(run_files: str | os.PathLike[str], files: Mapping[str, bytes]) -> list[Path]:
    """Write the files a worker sent back (plain names only); returns the paths written."""
    folder = Path(run_files)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        if Path(name).name != name or name.startswith("."):
            continue  # only plain file names come back: never a path out of the folder
        target = folder / name
        if layout.is_log(name) and target.is_file():
            data = target.read_bytes() + data
        written.append(atomic_write(target, data))
    return written


def read(path: Path) -> bytes | None:
    """A run file's bytes; None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write_history(path: str | os.PathLike[str], epochs: Iterable[Mapping[str, Any]]) -> Path:
    """The original's ``history_<id>.pt`` from a run's per-epoch rows, atomically.

    The file is a dict of per-epoch lists under :data:`~mosaic.store.layout.HISTORY_KEYS`
    (floats; a missing value, such as the accuracy of a regression, is NaN).
    """
    import torch  # only here: the original's history files are torch pickles

    rows = list(epochs)
    data = {
        key: [math.nan if row.get(key) is None else float(row[key]) for row in rows] for key in layout.HISTORY_KEYS
    }
    return atomic_write(path, lambda tmp: torch.save(data, tmp))
