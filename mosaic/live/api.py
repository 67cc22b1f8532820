"""The page's routes, answered alike by the scheduler's page and by ``mosaic ui``.

:func:`respond` takes a path under the page (``/mosaic``) and its query and returns a
:class:`Response`; each server only moves bytes. The routes:

- ``/mosaic``: the page; ``/mosaic/vega.js``: the Vega bundle (cached by the browser);
- ``/mosaic/summary.json``: the live view (:func:`mosaic.live.views.summary`), bounded;
- ``/mosaic.json``: per-run rows, a page at a time (``offset``, ``limit`` up to 500, ``sort``,
  ``desc``, ``state``, ``q``, ``dataset``, ``model``);
- ``/mosaic/run.json?run=ID``: one run and its curve; ``/mosaic/log?run=ID``: the end of its log.

Every JSON route takes ``sweep`` (a scheduler serves every sweep sent to it; the latest by
default). A :class:`Source` is where boards come from.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mosaic.live import assets, views
from mosaic.live.board import Board
from mosaic.live.curves import POINTS
from mosaic.live.judge import Judge
from mosaic.store import layout

PAGE = "/mosaic"
#: the most of a log the page sends (its end)
LOG_TAIL_BYTES = 64 * 1024
_JSON = "application/json"


class Source(Protocol):
    """Where the page's boards come from: the scheduler's sweeps, or a store."""

    def board(self, sweep: str) -> Board | None:
        """The board of ``sweep`` (its id, or ``id-token``; empty: the default one)."""

    def sweeps(self) -> list[dict[str, Any]]:
        """The sweeps to choose from (``id``, ``label``); one or none: no choice shown."""

    def judge(self, board: Board) -> Judge:
        """The judge of ``board``'s verdict so far."""

    def curve(self, board: Board, run_id: int) -> list[dict[str, Any]] | None:
        """One run's curve as rows (``epoch``, ``split``, ``loss``); None for the board's own."""

    def log(self, board: Board, run_id: int) -> Path | None:
        """The log file of ``run_id`` when this server can read it."""


@dataclass(frozen=True)
class Response:
    """What a server sends: a status, a type, the body and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json(value: Any, gzipped: bool) -> Response:
    body = json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")
    headers = {"Cache-Control": "no-store"}
    if gzipped and len(body) > 2048:
        body, headers["Content-Encoding"] = gzip.compress(body, 5), "gzip"
    return Response(200, _JSON, body, headers)


def _error(status: int, message: str) -> Response:
    return Response(status, _JSON, json.dumps({"error": message}).encode("utf-8"), {"Cache-Control": "no-store"})


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except (TypeError, ValueError):
        return default


def respond(source: Source, path: str, query: Mapping[str, str], gzipped: bool = False,
            now: float | None = None) -> Response:
    """Answer ``path`` (``/mosaic...``) with ``query`` (one value per name); ``gzipped``: the
    client accepts gzip."""
    if path == PAGE:
        return Response(200, "text/html; charset=utf-8", assets.page(), {"Cache-Control": "no-store"})
    if path == PAGE + "/vega.js":
        plain, packed = assets.vega_bundle()
        headers = {"Cache-Control": "public, max-age=86400"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return Response(200, "text/javascript; charset=utf-8", packed if gzipped else plain, headers)
    if path not in (PAGE + ".json", PAGE + "/summary.json", PAGE + "/run.json", PAGE + "/log"):
        return _error(404, f"no such page: {path}")
    board = source.board(query.get("sweep", "")) or Board()  # no sweep yet: an empty page, filled when one starts
    clock = time.time() if now is None else now
    if path == PAGE + "/summary.json":
        body = views.summary(board, clock, sort=query.get("sort", "mean"), desc=query.get("desc") == "1",
                             dataset=query.get("dataset") or None, logs=board.run_files is not None)
        body["verdict"] = source.judge(board).get(board)
        body["sweeps"] = source.sweeps()
        return _json(body, gzipped)
    if path == PAGE + ".json":
        return _json(views.runs_page(
            board, offset=_int(query, "offset", 0), limit=_int(query, "limit", 100), sort=query.get("sort", "run"),
            desc=query.get("desc") == "1", state=query.get("state", ""), text=query.get("q", ""),
            dataset=query.get("dataset", ""), model=query.get("model", "")), gzipped)
    run_id = _int(query, "run", -1)
    run = board.runs.get(run_id)
    if run is None:
        return _error(404, f"no run {query.get('run')!r} in this sweep")
    if path == PAGE + "/log":
        return _log(source.log(board, run_id), run_id)
    curve = source.curve(board, run_id)
    points = ""
    if curve is None:
        curve = [{"epoch": e, "split": split, "loss": views.number(v)} for e, train, test in
                 (run.curve.points() if run.curve is not None else ()) for split, v in (("train", train), ("test", test))
                 if v is not None]
        points = f"the live page keeps at most {POINTS} points a run; every epoch is in the store"
    log = f"mosaic/log?run={run_id}" if board.run_files is not None else None
    return _json({"run": views.run_row(board, run), "curve": curve, "points": points, "log": log}, gzipped)


def log_file(run_files: str | None, run_id: int) -> Path | None:
    """Where ``run_id``'s log is in the folder ``run_files`` (None without one)."""
    return layout.log_path(run_files, run_id) if run_files else None


def _log(path: Path | None, run_id: int) -> Response:
    if path is None or not path.is_file():
        where = f" (looked for {path})" if path is not None else ""
        return _error(404, f"the log of run {run_id} is not readable here{where}")
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        file.seek(max(0, size - LOG_TAIL_BYTES))
        data = file.read()
    head = f"[the last {LOG_TAIL_BYTES // 1024} KB of {path}]\n".encode() if size > LOG_TAIL_BYTES else b""
    return Response(200, "text/plain; charset=utf-8", head + data, {"Cache-Control": "no-store"})
