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
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from mosaic.errors import UsageError
from mosaic.store.files import atomic_write

SCHEMES = ("http", "https", "file")
_LOCKS = ".locks"
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
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    limit = max_bytes
    if limit is None and (cache_dir is None or _same(folder, _defaults.cache_dir)):
        limit = _defaults.max_bytes
    try:
        (folder / _LOCKS).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the cache folder {folder}: {exc}; fix cache_database_path") from None
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
    """Total size of the cached files."""
    total = 0
    for path in entries(cache_dir):
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def evict(cache_dir: str | os.PathLike[str], max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Delete least recently used files until the cache holds at most ``max_bytes``.

    ``keep`` (the file just fetched) and entries another process holds locked are spared.
    Returns the deleted files.
    """
    folder = Path(cache_dir)
    removed: list[Path] = []
    with FileLock(str(folder / _LOCKS / "_evict.lock")):
        files = entries(folder)
        total = sum(_size(p) for p in files)
        for path in files:
            if total <= max_bytes:
                break
            if keep is not None and path == keep:
                continue
            lock = FileLock(str(folder / _LOCKS / f"{path.name}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                size = _size(path)
                path.unlink(missing_ok=True)
            finally:
                lock.release()
            total -= size
            removed.append(path)
    return removed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
