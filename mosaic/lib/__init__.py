"""The original tool's helpers for data classes: ``from mosaic.lib import *`` keeps working.

Data classes written for ``ml-mosaic`` 0.0.4 call these from ``prepare``; they work on the
dataset cache of :mod:`mosaic.cache`, which every worker points at MONITOR
``cache_database_path`` and sizes with ``cache_size``. Safe with many worker processes at once.

- ``save_path_file(path)`` registers an existing file: its size is recorded and, when the
  cache outgrows ``cache_size``, the least recently used files are deleted.
- ``get_path_file(path)`` answers whether ``path`` is registered (and still there).
- ``download_file(url, path)`` downloads ``url`` to ``path`` once, registers it and returns
  the path; later calls return the same path without downloading.

New code can call :func:`mosaic.cache.fetch` instead (one call: download once, return the path).
"""

from __future__ import annotations

import os

from mosaic import cache

__all__ = ["download_file", "get_path_file", "save_path_file"]


def save_path_file(path: str | os.PathLike[str]) -> None:
    """Register the existing file ``path`` in the cache; least recently used files go past ``cache_size``."""
    cache.register(path)


def get_path_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is registered in the cache (and the file still exists)."""
    return cache.is_registered(path)


def download_file(url: str, path: str | os.PathLike[str]) -> str:
    """Download ``url`` to ``path`` once, register it, and return its absolute path.

    Later calls (from any worker) return the path of that first download while it is in the cache.
    A failed download raises UsageError naming the URL (the original returned None).
    """
    return str(cache.download(url, path))
