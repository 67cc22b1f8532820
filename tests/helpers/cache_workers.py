"""Functions run in spawned processes by tests/test_lib.py, which import this module by its name
``tests.helpers.cache_workers`` (a light module: no torch import)."""

from __future__ import annotations

from mosaic import cache


def register_many(folder: str, paths: list[str]) -> None:
    """Point this process's cache at ``folder`` and register every path with save_path_file."""
    cache.configure(folder, 10**9)
    from mosaic.lib import save_path_file

    for path in paths:
        save_path_file(path)


def download(folder: str, url: str, path: str) -> str:
    """Point this process's cache at ``folder`` and download_file ``url`` to ``path``."""
    cache.configure(folder, 10**9)
    from mosaic.lib import download_file

    return download_file(url, path)
