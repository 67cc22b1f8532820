"""User class files travel with the task, so a worker needs no shared disk with the driver.

The driver reads every class file a sweep names (``path_to_class`` of each section, and
``path_to_class_loss_function``) plus the other ``.py`` files beside them (so a model file
can ``import helpers`` from its folder), into one :class:`SourceBundle` sent inside each
:class:`~mosaic.exec.wire.task.RunTask`. On the worker, :func:`locate` answers where to import a
class file from:

- the driver's own file, when the worker sees it at the same path with the same content
  (a local cluster, a shared disk): ``__file__`` and data files beside it keep working;
- otherwise a copy of the bundle written once per content hash under the worker's temporary
  folder (``<tmp>/mosaic-sources-<uid>/<hash>/``), keeping the files' relative layout.

Limits: only ``.py`` files travel — data files a class opens beside itself do not (use
``mosaic.lib`` / the cache or a URL); sibling modules travel only from the folders of the
named class files (sub-packages do not, nor files above); siblings travel only while a
folder's ``.py`` files stay under :data:`SIBLING_LIMIT` bytes (the named files always do).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mosaic.classpath import find_class_file

#: A class file's sibling ``.py`` files travel only while their folder's total stays under this
#: (the bundle goes with every task: a big folder of scripts would cross the network N times).
SIBLING_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """One file of a bundle: where the driver read it, where it goes in the copy, its bytes."""

    origin: str  # absolute path on the driver
    arcname: str  # relative path inside the worker's copy
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class SourceBundle:
    """The user files of one sweep; ``names`` maps a class path as the config writes it to a file."""

    files: tuple[SourceFile, ...]
    names: tuple[tuple[str, str], ...]  # (path_to_class as written, origin)

    @property
    def digest(self) -> str:
        """One hash over every file's place and content: the name of the worker's copy."""
        sha = hashlib.sha256()
        for file in self.files:
            sha.update(file.arcname.encode() + b"\0" + file.digest.encode() + b"\0")
        return sha.hexdigest()[:20]

    def file_for(self, path_to_class: str) -> SourceFile | None:
        """The bundled file a class path names (as written in the config, or absolute)."""
        origin = dict(self.names).get(str(path_to_class), str(path_to_class))
        return next((f for f in self.files if f.origin == origin), None)


def bundle_sources(class_paths: Iterable[str], config_dir: str | os.PathLike[str]) -> SourceBundle:
    """Read the class files ``class_paths`` (resolved as the worker would) and their siblings.

    A path that does not resolve on the driver is left out: the worker then looks on its own
    disk and reports the file missing there, per run.
    """
    named: dict[str, Path] = {}
    for raw in dict.fromkeys(str(p) for p in class_paths if p):
        path = find_class_file(raw, config_dir)
        if path is not None:
            named[raw] = path
    base = Path(config_dir).resolve()
    files: dict[Path, str] = {}
    for path in dict.fromkeys(named.values()):
        files[path] = _arcname(path, base)
        for sibling in _siblings(path):
            files.setdefault(sibling, _arcname(sibling, base))
    return SourceBundle(
        files=tuple(SourceFile(str(p), files[p], p.read_bytes()) for p in sorted(files)),
        names=tuple((raw, str(path)) for raw, path in named.items()),
    )


def _arcname(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:  # outside the config folder: one sub-folder per origin folder
        folder = hashlib.sha256(str(path.parent).encode()).hexdigest()[:12]
        return f"_outside/{folder}/{path.name}"


def _siblings(path: Path) -> list[Path]:
    try:
        found = sorted(p for p in path.parent.glob("*.py") if p.is_file() and p != path)
        size = sum(p.stat().st_size for p in found)
    except OSError:
        return []
    return found if size <= SIBLING_LIMIT else []


# --- worker side ------------------------------------------------------------------------------

_lock = threading.Lock()
_copies: dict[str, Path] = {}


def locate(bundle: SourceBundle | None, path_to_class: str) -> Path | None:
    """Where a worker imports ``path_to_class`` from; None when the bundle does not hold it.

    The driver's own file when this machine sees it unchanged, else the bundle's local copy.
    """
    if bundle is None:
        return None
    file = bundle.file_for(path_to_class)
    if file is None:
        return None
    origin = Path(file.origin)
    with contextlib.suppress(OSError):
        if origin.is_file() and hashlib.sha256(origin.read_bytes()).hexdigest() == file.digest:
            return origin
    return materialize(bundle) / file.arcname


def source_root() -> Path:
    """The folder under which a worker writes its copies of bundles."""
    return Path(tempfile.gettempdir()) / f"mosaic-sources-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def materialize(bundle: SourceBundle) -> Path:
    """Write ``bundle`` once per content hash under :func:`source_root`; return its folder.

    Written to a temporary folder then renamed, so worker processes sharing a machine never
    import a half-written copy; a copy is reused by every process and every later sweep.
    """
    digest = bundle.digest
    with _lock:
        known = _copies.get(digest)
        if known is not None and known.is_dir():
            return known
        target = source_root() / digest
        if not target.is_dir():
            staging = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=_mkdir(source_root())))
            for file in bundle.files:
                dest = staging / file.arcname
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(file.data)
            try:
                os.rename(staging, target)
            except OSError:  # another process renamed its copy first
                shutil.rmtree(staging, ignore_errors=True)
                if not target.is_dir():
                    raise
        _copies[digest] = target
        return target


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
