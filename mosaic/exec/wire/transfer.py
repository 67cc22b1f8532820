"""Run files without a shared disk: where a worker writes a run's checkpoint, log and history file.

The driver picks one of three ways per sweep (:func:`plan`), from ``run_files_path``:

- a **URL** (``s3://``, ``gs://``, ``file://``... anything with ``://``, opened with fsspec):
  every worker reads and writes there itself; nothing large travels through the driver. A
  worker trains in a folder of its own, fetches the run's checkpoint (and log) from the URL
  first, and uploads the run's files when the run ends.
- a **path** the worker sees (the same machine, or a mount shared at the same path): the
  worker writes there directly, as it always did. It knows by reading back the token the
  driver put in the folder (:mod:`mosaic.store.run_files`); one small read per run.
- a **path** the worker does not see (another machine): the worker trains in a folder of its
  own and returns the run's files with its result; the driver writes them under its
  ``run_files_path``. For ``rerun``/``resume`` on a cluster Mosaic did not start, the driver
  sends the run's checkpoint with the task (:attr:`RunFiles.carry`).

Checkpoints written during a run (``checkpoint_every``) stay in the worker's folder until the
run ends in the last two cases: a worker that dies takes them with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mosaic.store import layout
from mosaic.store import run_files as shared


def is_url(run_files: str) -> bool:
    """True for a run_files_path that names an fsspec URL (``s3://bucket/runs``, ``file:///...``)."""
    return "://" in run_files


@dataclass
class RunFiles:
    """How one task reaches its run files (picklable; part of the task)."""

    target: str  # the driver's run_files_path: a folder or a URL
    token: str | None = None  # the driver's marker token (folders only)
    carry: dict[str, bytes] = field(default_factory=dict)  # files sent along (a checkpoint to resume)


def plan(target: str) -> RunFiles:
    """The driver's side, once per sweep: a folder is created and marked with a new token."""
    return RunFiles(target, None if is_url(target) else shared.mark(target))


def for_task(spec: RunFiles, run_id: int, resume: bool, send: bool) -> RunFiles:
    """``spec`` for one task: with the run's checkpoint when it resumes and ``send`` (workers
    that may not see the driver's folder: a cluster Mosaic did not start)."""
    if not (send and resume) or is_url(spec.target):
        return spec
    path = layout.checkpoint_path(spec.target, run_id)
    data = shared.read(path)
    return dataclasses.replace(spec, carry={path.name: data}) if data is not None else spec


def receive(spec: RunFiles, files: dict[str, bytes]) -> None:
    """Write the files a worker sent back under the driver's run_files_path."""
    if files and not is_url(spec.target):
        shared.receive(spec.target, files)


@contextlib.contextmanager
def workspace(spec: RunFiles | None, run_files: str, run_id: int, resume: bool, returned: dict[str, bytes]) -> Iterator[Path]:
    """The folder a worker trains run ``run_id`` in; on leaving, the run's files go where
    ``spec`` says (``returned`` is filled with those the driver must write). Without a
    ``spec`` (a run called directly) or when the worker sees the folder: ``run_files`` itself."""
    if spec is None or (not is_url(spec.target) and (not spec.token or shared.sees(spec.target, spec.token))):
        yield Path(run_files)
        return
    folder = Path(tempfile.mkdtemp(prefix=f"mosaic-run-{run_id}-"))
    try:
        if is_url(spec.target):
            _fetch(spec.target, folder, [layout.log_path(folder, run_id).name]
                   + ([layout.checkpoint_path(folder, run_id).name] if resume else []))
        else:
            for name, data in spec.carry.items():
                if Path(name).name == name:
                    (folder / name).write_bytes(data)
        yield folder
    finally:
        try:
            if is_url(spec.target):
                _upload(folder, spec.target)
            else:
                carried = set(spec.carry)
                for path in sorted(folder.iterdir()):
                    if path.is_file() and not (path.name in carried and path.read_bytes() == spec.carry[path.name]):
                        returned[path.name] = path.read_bytes()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _fetch(url: str, folder: Path, names: list[str]) -> None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    for name in names:
        source = f"{root.rstrip('/')}/{name}"
        if fs.exists(source):
            fs.get_file(source, str(folder / name))


def _upload(folder: Path, url: str) -> None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    fs.makedirs(root, exist_ok=True)
    for path in sorted(folder.iterdir()):
        if path.is_file():
            fs.put_file(str(path), f"{root.rstrip('/')}/{path.name}")
