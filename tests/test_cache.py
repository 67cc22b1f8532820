"""The dataset download cache, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mosaic import cache
from mosaic.errors import UsageError


class Server:
    """Serves ``/<name>`` as ``size`` bytes of ``name[0]``, slowly; counts requests per path."""

    def __init__(self, delay: float = 0.0) -> None:
        self.requests: Counter[str] = Counter()
        self.delay = delay
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.requests[self.path] += 1
                name = self.path.rsplit("/", 1)[-1]
                if name.startswith("missing"):
                    self.send_error(404, "Not Found")
                    return
                size = int(name.split("_")[1].split(".")[0]) if "_" in name else 10
                body = name[0].encode() * size
                time.sleep(server.delay)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/data/{name}"


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def test_download_once_then_cached(server: Server, tmp_path: Path) -> None:
    url = server.url("a_100.bin")
    first = cache.fetch(url, cache_dir=tmp_path)
    second = cache.fetch(url, cache_dir=tmp_path)
    assert first == second
    assert first.parent == tmp_path and first.name.endswith("_a_100.bin")
    assert first.read_bytes() == b"a" * 100
    assert server.requests == {"/data/a_100.bin": 1}
    assert not list(tmp_path.glob(".*.tmp"))
    assert cache.entries(tmp_path) == [first]


def test_local_paths_and_file_urls(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x,y\n")
    assert cache.fetch(data) == data
    assert cache.fetch(str(data), cache_dir=tmp_path / "c") == data  # plain paths are not copied
    copied = cache.fetch(data.as_uri(), cache_dir=tmp_path / "c")
    assert copied.parent == tmp_path / "c" and copied.read_text() == "x,y\n"
    with pytest.raises(UsageError, match="file not found"):
        cache.fetch(tmp_path / "nope.csv")


def test_errors_are_usage_errors(server: Server, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="HTTP 404"):
        cache.fetch(server.url("missing.bin"), cache_dir=tmp_path)
    with pytest.raises(UsageError, match="unsupported URL scheme 'ftp'"):
        cache.fetch("ftp://example.org/x", cache_dir=tmp_path)
    with pytest.raises(UsageError, match="cannot download"):
        cache.fetch("http://127.0.0.1:9/closed.bin", cache_dir=tmp_path)  # port 9: nothing listens
    assert cache.entries(tmp_path) == []  # nothing half-written is left
    assert not list(tmp_path.glob(".*.tmp"))


def test_least_recently_used_files_go_first(server: Server, tmp_path: Path) -> None:
    a = cache.fetch(server.url("a_40.bin"), cache_dir=tmp_path, max_bytes=100)
    b = cache.fetch(server.url("b_40.bin"), cache_dir=tmp_path, max_bytes=100)
    _age(a, 30)
    _age(b, 20)
    cache.fetch(server.url("a_40.bin"), cache_dir=tmp_path, max_bytes=100)  # a is used again: b is now oldest
    c = cache.fetch(server.url("c_40.bin"), cache_dir=tmp_path, max_bytes=100)
    assert {p.name for p in cache.entries(tmp_path)} == {a.name, c.name}
    assert not b.exists()
    assert cache.cache_bytes(tmp_path) == 80
    # a file larger than the whole cache is kept (the run needs it); the others make room
    big = cache.fetch(server.url("d_150.bin"), cache_dir=tmp_path, max_bytes=100)
    assert cache.entries(tmp_path) == [big]
    assert server.requests["/data/a_40.bin"] == 1


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_evict_order(tmp_path: Path) -> None:
    for index, name in enumerate(["old", "middle", "new"]):
        (tmp_path / name).write_bytes(b"x" * 10)
        _age(tmp_path / name, 100 - index)
    assert [p.name for p in cache.entries(tmp_path)] == ["old", "middle", "new"]
    (tmp_path / ".locks").mkdir()
    removed = cache.evict(tmp_path, 15)
    assert [p.name for p in removed] == ["old", "middle"]
    assert [p.name for p in cache.entries(tmp_path)] == ["new"]


def test_configure_sets_the_defaults(server: Server, tmp_path: Path) -> None:
    try:
        cache.configure(tmp_path / "configured", 50)
        a = cache.fetch(server.url("a_30.bin"))
        _age(a, 10)
        b = cache.fetch(server.url("b_30.bin"))
        assert a.parent == tmp_path / "configured"
        assert cache.entries(tmp_path / "configured") == [b]
    finally:
        cache.configure(None, None)
    with pytest.raises(UsageError, match="0 or more"):
        cache.configure(tmp_path, -1)


def test_concurrent_processes_download_once(tmp_path: Path) -> None:
    slow = Server(delay=0.5)  # slow enough that the four requests would overlap without the lock
    slow.thread.start()
    try:
        url = slow.url("shared_1000.bin")
        context = multiprocessing.get_context("spawn")
        with context.Pool(4) as pool:
            paths = pool.starmap(cache.fetch, [(url, str(tmp_path))] * 4)
        assert len(set(paths)) == 1
        assert paths[0].read_bytes() == b"s" * 1000
        assert slow.requests == {"/data/shared_1000.bin": 1}
    finally:
        slow.httpd.shutdown()
        slow.httpd.server_close()
