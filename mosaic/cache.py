"""A download cache for datasets (MONITOR ``cache_database_path`` + ``cache_size``).

``fetch(url)`` returns a local file: plain paths come back as they are (after an existence
check); ``http(s)://`` and ``file://`` URLs are downloaded once into the cache folder under
a hashed name, through a temporary file renamed into place. A lock per entry
(``filelock``) makes concurrent processes asking for the same URL wait for one download.
Each access touches the file, and when the folder grows past ``max_bytes`` the least
recently used files go first.

Data classes call it from ``prepare``::

    from mosaic.cache import fetch
    path = fetch("https://example.org/mnist.npz")

The original tool's helpers (:mod:`mosaic.lib`) keep working on the same folder: a
registry (``.registry.json``, written under a file lock) records files anywhere on disk
(:func:`register`, :func:`is_registered`, :func:`download`); eviction counts them with the
folder's own files and deletes the least recently used of either kind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from mosaic.errors import UsageError
from mosaic.store.files import atomic_write

SCHEMES = ("http", "https", "file")
_LOCKS = ".locks"
_INDEX_LOCK = "_evict.lock"  # guards the registry and eviction
_REGISTRY = ".registry.json"
_INDEX_TIMEOUT_S = 600.0
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


@dataclass
class _Defaults:
    cache_dir: Path | None = None
    max_bytes: int | None = None


_defaults = _Defaults()
_defaults_lock = threading.Lock()


def configure(cache_dir: str | os.PathLike[str] | None, max_bytes: int | None = None) -> None:
    """Set this process's default cache folder and size limit (the driver does it on each worker)."""
    if max_bytes is not None and max_bytes < 0:
        raise UsageError(f"cache size must be 0 or more bytes. Instead got {max_bytes}")
    with _defaults_lock:
        _defaults.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        _defaults.max_bytes = max_bytes


def default_cache_dir() -> Path:
    """The configured folder, else ``$MOSAIC_CACHE_DIR``, else ``~/.cache/mosaic``."""
    if _defaults.cache_dir is not None:
        return _defaults.cache_dir
    env = os.environ.get("MOSAIC_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mosaic"


def is_url(value: str) -> bool:
    """True when ``value`` looks like ``scheme://...`` (not a Windows drive letter)."""
    scheme = urllib.parse.urlsplit(value).scheme
    return len(scheme) > 1 and "://" in value


def entry_name(url: str) -> str:
    """The file name a URL is cached under: a hash of the URL, then its own base name."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]
    base = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    base = "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[-80:].lstrip(".")
    return f"{digest}_{base}" if base else digest


def fetch(
    url_or_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    max_bytes: int | None = None,
) -> Path:
    """A local path for ``url_or_path``, downloading URLs into the cache once.

    ``cache_dir``/``max_bytes`` default to what :func:`configure` set. Raises UsageError when a
    path does not exist, a URL scheme is unsupported or the download fails.
    """
    text = os.fspath(url_or_path)
    if not is_url(text):
        path = Path(text).expanduser()
        if not path.exists():
            raise UsageError(f"{path}: file not found; check the path (or give an http(s):// or file:// URL)")
        return path
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme not in SCHEMES:
        raise UsageError(f"{text}: unsupported URL scheme '{scheme}'; use {', '.join(SCHEMES)}")
    folder, limit = _where(cache_dir, max_bytes)
    _ensure(folder)
    name = entry_name(text)
    target = folder / name
    with FileLock(str(folder / _LOCKS / f"{name}.lock")):
        if target.is_file():
            _touch(target)
        else:
            _download(text, target)
    if limit is not None:
        evict(folder, limit, keep=target)
    return target


def _same(a: Path, b: Path | None) -> bool:
    return b is not None and a.expanduser().absolute() == b.expanduser().absolute()


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _download(url: str, target: Path) -> None:
    def fetch_to(tmp: Path) -> None:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)

    try:
        atomic_write(target, fetch_to)
    except urllib.error.HTTPError as exc:
        raise UsageError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; check the URL") from None
    except urllib.error.URLError as exc:
        raise UsageError(f"cannot download {url}: {exc.reason}; check the URL and the network") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot download {url} into {target.parent}: {exc}") from None
    _touch(target)


def entries(cache_dir: str | os.PathLike[str]) -> list[Path]:
    """The cached files, least recently used first."""
    folder = Path(cache_dir)
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (_mtime(p), p.name))


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def cache_bytes(cache_dir: str | os.PathLike[str]) -> int:
    """Total size of the cached files: the folder's own and the registered ones."""
    files = _read_registry(Path(cache_dir))
    paths = {os.path.abspath(p) for p in entries(cache_dir)} | {k for k in files if os.path.isfile(k)}
    return sum(_size(Path(p)) for p in paths)


def evict(cache_dir: str | os.PathLike[str], max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Delete least recently used files until the cache holds at most ``max_bytes``.

    The cache is the folder's own files plus the files its registry records (see
    :func:`register`). ``keep`` (the file just fetched or registered) and entries another
    process holds locked are spared. Returns the deleted files.
    """
    folder = Path(cache_dir)
    _ensure(folder)
    with _index(folder) as files:
        return _evict_locked(folder, files, max_bytes, keep)


def _evict_locked(folder: Path, files: dict[str, dict[str, Any]], max_bytes: int, keep: Path | None) -> list[Path]:
    kept = os.path.abspath(keep) if keep is not None else None
    candidates: list[tuple[float, str, int, str, bool]] = []  # last use, path, size, lock name, registered
    for path in entries(folder):
        key = os.path.abspath(path)
        if key not in files:
            candidates.append((_mtime(path) / 1e9, key, _size(path), f"{path.name}.lock", False))
    for key, record in list(files.items()):
        if not os.path.isfile(key):
            del files[key]  # deleted behind our back: forget it
            continue
        candidates.append((float(record.get("last_use", 0.0)), key, _size(Path(key)), _path_lock(key), True))
    candidates.sort()
    total = sum(c[2] for c in candidates)
    removed: list[Path] = []
    for _, key, size, lock_name, registered in candidates:
        if total <= max_bytes:
            break
        if key == kept:
            continue
        lock = FileLock(str(folder / _LOCKS / lock_name))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            Path(key).unlink(missing_ok=True)
        except OSError:
            continue
        finally:
            lock.release()
        if registered:
            files.pop(key, None)
        total -= size
        removed.append(Path(key))
    return removed


# --- the registry of the original's helpers (mosaic.lib) ----------------------------------


def register(
    path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    max_bytes: int | None = None,
    url: str | None = None,
) -> Path:
    """Record an existing file in the cache (size, last use), then evict past ``max_bytes``.

    The file is owned by the cache from now on: when the cache outgrows its size, the least
    recently used files are deleted, registered ones included (the original's
    ``save_path_file``). Raises UsageError when the file does not exist.
    """
    target = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    try:
        size = target.stat().st_size
    except OSError:
        raise UsageError(f"{target}: file not found; register a file after writing it") from None
    folder, limit = _where(cache_dir, max_bytes)
    _ensure(folder)
    with _index(folder) as files:
        record = {"size": size, "last_use": time.time(), "url": url}
        if url is None and str(target) in files:
            record["url"] = files[str(target)].get("url")
        files[str(target)] = record
        if limit is not None:
            _evict_locked(folder, files, limit, keep=target)
    return target


def is_registered(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """True when ``path`` was registered and the file is still there (its last use is updated)."""
    key = os.path.abspath(os.path.expanduser(os.fspath(path)))
    folder, _ = _where(cache_dir, None)
    if not (folder / _REGISTRY).is_file():
        return False
    with _index(folder) as files:
        if key not in files:
            return False
        if not os.path.isfile(key):
            del files[key]
            return False
        files[key]["last_use"] = time.time()
        return True


def download(
    url: str,
    path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Download ``url`` to ``path`` once and register it; later calls return the same file.

    The answer is the file first downloaded for this URL while it is still there, wherever
    ``path`` points now (the original's ``download_file``). Concurrent processes asking for the
    same URL wait for one download. Raises UsageError when the URL is unsupported or fails.
    """
    text = str(url)
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if not is_url(text) or scheme not in SCHEMES:
        raise UsageError(f"{text}: not a URL this cache downloads; use {', '.join(s + '://' for s in SCHEMES)}")
    target = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    folder, limit = _where(cache_dir, max_bytes)
    _ensure(folder)
    with FileLock(str(folder / _LOCKS / f"url_{entry_name(text)}.lock")):
        with _index(folder) as files:
            for key, record in files.items():
                if record.get("url") == text and os.path.isfile(key):
                    record["last_use"] = time.time()
                    return Path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create {target.parent} for {text}: {exc}") from None
        _download(text, target)
        return register(target, folder, limit, url=text)


def registered(cache_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The registry: ``{absolute path: {"size", "last_use", "url"}}``."""
    return _read_registry(Path(cache_dir))


def _where(cache_dir: str | os.PathLike[str] | None, max_bytes: int | None) -> tuple[Path, int | None]:
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    limit = max_bytes
    if limit is None and (cache_dir is None or _same(folder, _defaults.cache_dir)):
        limit = _defaults.max_bytes
    return folder, limit


def _ensure(folder: Path) -> None:
    try:
        (folder / _LOCKS).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the cache folder {folder}: {exc}; fix cache_database_path") from None


def _path_lock(key: str) -> str:
    return f"path_{hashlib.sha256(key.encode('utf-8')).hexdigest()[:24]}.lock"


@contextlib.contextmanager
def _index(folder: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """The registry, read and written back under the cache's index lock."""
    lock = FileLock(str(folder / _LOCKS / _INDEX_LOCK))
    try:
        lock.acquire(timeout=_INDEX_TIMEOUT_S)
    except Timeout:
        raise UsageError(
            f"the cache {folder} stayed locked for {_INDEX_TIMEOUT_S:.0f} s; if no Mosaic process is using it, "
            f"delete {lock.lock_file}"
        ) from None
    try:
        files = _read_registry(folder)
        before = json.dumps(files, sort_keys=True)
        yield files
        if json.dumps(files, sort_keys=True) != before:
            _write_registry(folder, files)
    finally:
        lock.release()


def _read_registry(folder: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((folder / _REGISTRY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): dict(v) for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


def _write_registry(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    atomic_write(folder / _REGISTRY, json.dumps({"format": 1, "files": files}, indent=0))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
