"""``mosaic ui STORE``: the live page over a store, finished or still being written.

A :class:`StoreSource` answers the page's routes (:mod:`mosaic.live.api`) from a read-only
DuckDB session over the store (or over a database of the original tool): the board is
rebuilt when the store has new rows, at most every :data:`REFRESH_S` seconds (and never more
often than four times its own cost), so a page left open on a store of 100,000 runs costs
little. The server is the standard library's ``ThreadingHTTPServer``, on loopback unless
told otherwise: it has no authentication.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mosaic.errors import UsageError
from mosaic.live import api, from_store
from mosaic.live.board import Board
from mosaic.live.judge import Judge
from mosaic.store.layout import log_path
from mosaic.store.session import open_store

#: seconds between two reads of a store that is being written, at least
REFRESH_S = 2.0
DEFAULT_PORT = 8790


class StoreSource:
    """The page's boards, read from one store (see the module)."""

    def __init__(self, store: str | os.PathLike[str], run_files: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(store).resolve()
        self.session = open_store(self.path)
        self.lock = threading.Lock()
        self.explicit_files = Path(run_files) if run_files is not None else None
        self.folders: list[Path] = []
        self._board: Board | None = None
        self._seen: tuple[Any, ...] | None = None
        self._checked = -float("inf")
        self._cost = 0.0
        self._judge = Judge()

    def board(self, sweep: str = "") -> Board:
        """The store's board, read again when the store changed (and it is time)."""
        with self.lock:
            clock = time.monotonic()
            if self._board is not None and clock - self._checked < max(REFRESH_S, 4 * self._cost):
                return self._board
            self._checked = clock
            seen = from_store.fingerprint(self.session)
            if self._board is None or seen != self._seen:
                start = time.perf_counter()
                self._board = from_store.load_board(self.session, str(self.path))
                self.folders = ([self.explicit_files] if self.explicit_files is not None else []) + \
                    from_store.run_files_folders(self.session, self.path)
                self._board.run_files = str(self.folders[0]) if self.folders else None
                self._seen, self._cost = seen, time.perf_counter() - start
            return self._board

    def sweeps(self) -> list[dict[str, Any]]:
        """None to choose: the page shows the whole store."""
        return []

    def judge(self, board: Board) -> Judge:
        """The store's judge."""
        return self._judge

    def curve(self, board: Board, run_id: int) -> list[dict[str, Any]] | None:
        """Every epoch of the run, from the store's history."""
        with self.lock:
            return from_store.run_curve(self.session, run_id)

    def log(self, board: Board, run_id: int) -> Path | None:
        """The run's log, in the first of the store's run-files folders that has it."""
        for folder in self.folders:
            if (path := log_path(folder, run_id)).is_file():
                return path
        return log_path(self.folders[0], run_id) if self.folders else None

    def close(self) -> None:
        """Close the store's session."""
        with self.lock:
            self.session.close()


class LiveServer:
    """``mosaic ui``'s server, serving in a thread of its own: :attr:`url`, :meth:`wait`, :meth:`close`."""

    def __init__(self, source: StoreSource, httpd: ThreadingHTTPServer, warnings: list[str]) -> None:
        self.source = source
        self.httpd = httpd
        self.warnings = warnings
        address, port = httpd.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else str(address)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}{api.PAGE}"
        self.store = source.path
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="mosaic-ui", daemon=True)
        self.thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout`` seconds); True when it has stopped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.thread.is_alive():
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0:
                return False
            self.thread.join(left)
        return True

    def close(self) -> None:
        """Stop serving and close the store."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.source.close()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(source: StoreSource) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mosaic-ui"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urllib.parse.urlsplit(self.path)
            if url.path in ("/", ""):
                self.send_response(302)
                self.send_header("Location", api.PAGE)
                self.end_headers()
                return
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            accepts = "gzip" in (self.headers.get("Accept-Encoding") or "")
            try:
                response = api.respond(source, url.path, query, gzipped=accepts)
            except Exception as exc:  # noqa: BLE001 - one request fails, the server goes on
                response = api.Response(500, "text/plain; charset=utf-8", f"{type(exc).__name__}: {exc}".encode())
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: library code never prints
            pass

    return Handler


def ui(store: str | os.PathLike[str], port: int = DEFAULT_PORT, host: str = "127.0.0.1",
       run_files: str | os.PathLike[str] | None = None) -> LiveServer:
    """Serve the live page over ``store`` (a store folder, or a database of the original tool),
    read-only, at ``http://host:port/mosaic``; returns the running :class:`LiveServer`.

    The page is the one ``mosaic run`` links to while a sweep trains, read from the store:
    finished, or still being written (it refreshes). ``host`` is loopback by default; any
    other address serves the store to whoever reaches it, without authentication (the
    server's ``warnings`` say so). ``port`` 0 takes any free port. ``run_files``: where the
    runs' logs are, when not where the store's sweeps put them.
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: not a port; give 0 to 65535 (0: any free port)")
    warnings = []
    if not _loopback(host):
        warnings.append(f"--host {host}: the page has no authentication; anyone who can reach "
                        f"this address reads the store (use the default 127.0.0.1 to keep it local)")
    source = StoreSource(store, run_files)
    try:
        httpd = ThreadingHTTPServer((host, port), _handler(source))
    except OSError as exc:
        source.close()
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
                         "choose another port, or --port 0 for any free one") from None
    httpd.daemon_threads = True
    return LiveServer(source, httpd, warnings)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
