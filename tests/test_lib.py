"""mosaic.lib: the original's cache helpers (get_path_file, save_path_file, download_file),
as the original tool's data classes call them, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mosaic import cache
from mosaic.errors import UsageError
from tests.helpers import cache_workers
from tests.helpers.servers import OR_TABLE, Files


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "cache"
    cache.configure(folder, 1000)
    yield folder
    cache.configure(None, None)


def test_lib_exports_the_original_names() -> None:
    namespace: dict[str, Any] = {}
    exec("from mosaic.lib import *", namespace)  # the original's data classes import it this way
    assert {"get_path_file", "save_path_file", "download_file"} <= set(namespace)


def test_save_and_get_path_file(configured: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mosaic.lib import get_path_file, save_path_file

    monkeypatch.chdir(tmp_path)
    Path("data.txt").write_bytes(b"x" * 300)
    assert get_path_file("data.txt") is False
    assert save_path_file("data.txt") is None
    assert get_path_file("data.txt") is True
    assert get_path_file(tmp_path / "data.txt") is True  # the same file, spelled absolute
    assert cache.registered(configured)[str(tmp_path / "data.txt")]["size"] == 300
    assert cache.cache_bytes(configured) == 300
    Path("data.txt").unlink()
    assert get_path_file("data.txt") is False  # deleted behind the cache's back: forgotten
    with pytest.raises(UsageError, match="file not found"):
        save_path_file("missing.txt")


def test_least_recently_used_files_are_deleted_past_cache_size(configured: Path, tmp_path: Path) -> None:
    from mosaic.lib import get_path_file, save_path_file

    paths = [tmp_path / f"f{i}.bin" for i in range(4)]
    for path in paths[:3]:
        path.write_bytes(b"x" * 300)
        save_path_file(path)  # 900 bytes of 1000
    assert get_path_file(paths[0])  # f0 used again: f1 is now the least recently used
    paths[3].write_bytes(b"x" * 300)
    save_path_file(paths[3])  # 1200 > 1000: f1 goes
    assert [p.exists() for p in paths] == [True, False, True, True]
    assert [get_path_file(p) for p in paths] == [True, False, True, True]
    assert cache.cache_bytes(configured) == 900


def test_download_file_downloads_once(configured: Path, files: Files, tmp_path: Path) -> None:
    from mosaic.lib import download_file, get_path_file

    target = tmp_path / "downloads" / "or.csv"
    first = download_file(files.url("or.csv"), str(target))
    assert first == str(target) and target.read_bytes() == OR_TABLE
    assert get_path_file(first)
    assert download_file(files.url("or.csv"), str(target)) == first
    assert download_file(files.url("or.csv"), str(tmp_path / "elsewhere.csv")) == first  # the same file again
    assert files.requests == {"/or.csv": 1}
    # a download counts against cache_size like any registered file
    download_file(files.url("big.bin"), str(tmp_path / "big.bin"))
    download_file(files.url("small.bin"), str(tmp_path / "small.bin"))
    assert not target.exists() and (tmp_path / "big.bin").exists() and (tmp_path / "small.bin").exists()
    assert download_file(files.url("or.csv"), str(target)) == str(target)
    assert files.requests["/or.csv"] == 2  # evicted, so downloaded again
    with pytest.raises(UsageError, match="HTTP 404"):
        download_file(files.url("missing.bin"), str(tmp_path / "missing.bin"))
    assert not (tmp_path / "missing.bin").exists()


def test_concurrent_processes_are_safe(tmp_path: Path) -> None:
    folder = str(tmp_path / "cache")
    groups = []
    for worker in range(4):
        group = []
        for index in range(40):
            path = tmp_path / f"w{worker}_{index}.bin"
            path.write_bytes(b"x" * (index + 1))
            group.append(str(path))
        groups.append(group)
    slow = Files({"shared.bin": b"s" * 1000})
    try:
        context = multiprocessing.get_context("spawn")
        with context.Pool(4) as pool:
            pool.starmap_async(cache_workers.register_many, [(folder, g) for g in groups]).get(timeout=120)
            answers = pool.starmap_async(cache_workers.download, [(folder, slow.url("shared.bin"), str(tmp_path / f"d{i}.bin")) for i in range(4)]).get(timeout=120)
    finally:
        slow.close()
    registry = cache.registered(folder)
    assert all(path in registry for group in groups for path in group)  # no registration lost
    assert len(set(answers)) == 1 and slow.requests == {"/shared.bin": 1}


# --- loss on aligned shapes ---------------------------------------------------------------------


# --- resume without the user's load_model ----------------------------------------------------------


