"""A sweep's run files on the driver's side: checkpoints, logs, legacy history files.

Workers that see the driver's ``run_files_path`` (the same machine, or a shared mount) write
there themselves. To tell, the driver puts a fresh token in the folder's marker file
(:func:`mark`) and sends it with each task; a worker that reads the same token back
(:func:`sees`) writes in place. Any other worker trains in a folder of its own and sends its
run's files back with the result; the driver writes them here (:func:`receive`): atomically,
a log appended to the earlier attempts' log. :func:`read` gives a file's bytes to send out
again (a checkpoint for ``rerun``/``resume``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

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
