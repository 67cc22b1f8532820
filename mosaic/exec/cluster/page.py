"""Mosaic's page beside Dask's dashboard: the sweep's live view, served by the scheduler.

Why a page of our own: Dask's pages show tasks (their keys carry the run id:
``run-<sweep>-<run>-<token>``, or ``runs-...`` for a batch of short runs) but know nothing of
epochs, datasets or models. :class:`MosaicPage`, a scheduler plugin, fills one
:class:`~mosaic.live.board.Board` per sweep:

- the sweep's plan (each run's dataset and model, its planned epochs) arrives when the sweep
  installs its worker plugin (:func:`show_plan`, called by the driver's cluster);
- workers publish their runs' :class:`~mosaic.exec.wire.events.RunEvent` records (start, each
  epoch, end with the traceback's last line) on the sweep's topic
  (:mod:`mosaic.exec.cluster.announcer`); the scheduler hands them to :meth:`MosaicPage.log_event`;
- a run alone in its task is also followed through its task's transitions (a worker that died).

It serves the routes of :mod:`mosaic.live.api` on the scheduler's own HTTP server, next to
``/status``: ``/mosaic`` (the page) and ``/mosaic.json`` (per-run rows, a page at a time)
among them. A refresh reads the board's running totals: its cost does not grow with the runs.
Memory is bounded per run (see :mod:`mosaic.live.board`); the boards of the
:data:`MAX_SWEEPS` latest sweeps are kept. Mosaic must be importable on the scheduler; when it
is not, the sweep runs without the page and says so once. :class:`LazyDashboard` builds Dask's
own dashboard on its first visit.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin
from tornado import web

from mosaic.exec.wire.events import END, START, RunEvent, parse_run_key, parse_topic, read_events
from mosaic.live import api
from mosaic.live.board import FINAL, Board, Plan
from mosaic.live.judge import Judge
from mosaic.store.status import RunStatus

PAGE = api.PAGE
#: sweeps whose boards a scheduler keeps (the oldest forgotten first)
MAX_SWEEPS = 8
#: a search's decisions a board keeps (the latest)
MAX_DECISIONS = 50
_STATUS = "status"
_DECISION = "decision"


class MosaicPage(SchedulerPlugin):
    """One board per sweep sent to this scheduler, served on ``/mosaic`` (see the module)."""

    name = "mosaic-page"
    idempotent = True  # one page per scheduler, shared by every sweep sent to it

    def __init__(self) -> None:
        self.boards: collections.OrderedDict[tuple[int, str], Board] = collections.OrderedDict()
        self.judges: dict[tuple[int, str], Judge] = {}

    async def start(self, scheduler: Any) -> None:
        """Add the page's routes to the scheduler's HTTP server."""
        app = getattr(scheduler, "http_application", None)
        if app is not None:
            app.add_handlers(r".*$", [(PAGE + r"(?:\.json|/summary\.json|/run\.json|/log|/vega\.js)?", _Handler, {"page": self})])

    # -- what arrives ---------------------------------------------------------------------
    def _board(self, sweep_id: int, token: str) -> Board:
        key = (sweep_id, token)
        board = self.boards.get(key)
        if board is None:
            board = self.boards[key] = Board(sweep_id, token)
            self.judges[key] = Judge()
            while len(self.boards) > MAX_SWEEPS:
                old, _ = self.boards.popitem(last=False)
                self.judges.pop(old, None)
        return board

    def take_plan(self, message: dict[str, Any]) -> None:
        """A sweep's plan (:meth:`mosaic.live.board.Plan.message`): its runs, pending."""
        plan = Plan.from_message(message)
        self._board(plan.sweep_id, plan.token).apply(plan)

    def end_sweep(self, sweep_id: int, token: str) -> None:
        """The sweep's driver let the cluster go: its runs not ended did not finish in it."""
        board = self.boards.get((sweep_id, token))
        if board is not None:
            board.close(time.time())

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        """Follow the task of a run alone: running when it starts, a system failure when its
        worker died before the run ended (it starts again if the driver runs it again)."""
        if finish not in ("processing", "erred"):
            return
        parsed = parse_run_key(key)
        if parsed is None:
            return
        sweep_id, run_id, token = parsed
        board = self.boards.get((sweep_id, token))
        run = board.runs.get(run_id) if board is not None else None
        if board is None or run is None or run.state in FINAL:
            return
        if finish == "processing" and run.state == RunStatus.PENDING:
            board.set_state(run, RunStatus.RUNNING, time.time())
        elif finish == "erred":
            board.on_end(run_id, RunStatus.SYSTEM_FAILURE, time.time(), error="its worker died (task erred)")

    def log_event(self, topic: str, msg: Any) -> None:
        """Take the records of a sweep's topic: runs' starts, epochs and ends (from workers),
        and what only the driver decides (:func:`driver_records`: a search's stops and decisions)."""
        parsed = parse_topic(topic)
        if parsed is None:
            return
        board = self._board(*parsed)
        now = time.time()
        records = msg if isinstance(msg, list | tuple) else [msg]
        if any(isinstance(r, dict) and r.get("event") in (_STATUS, _DECISION) for r in records):
            self._take_driver_records(board, records, now)
        for event in read_events(msg):
            self.take(board, event, now)

    @staticmethod
    def _take_driver_records(board: Board, records: Any, now: float) -> None:
        for record in records:
            kind = record.get("event") if isinstance(record, dict) else None
            if kind == _STATUS:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    board.on_end(int(record["run_id"]), RunStatus(record["status"]), now, error=record.get("text") or None)
            elif kind == _DECISION:
                board.decisions.insert(0, {k: v for k, v in record.items() if k != "event"})
                del board.decisions[MAX_DECISIONS:]
                board.decisions_total += 1
                board.version += 1

    @staticmethod
    def take(board: Board, event: RunEvent, now: float) -> None:
        """One run's record, on its sweep's board."""
        if event.kind == START:
            board.on_start(event.run_id, event.worker, now)
        elif event.kind == END:
            board.on_end(event.run_id, event.status or RunStatus.ERROR, now, error=event.error or None, worker=event.worker)
        else:
            board.on_epoch(event.run_id, event.attempt, event.epoch, event.epochs, event.values or {}, now)

    # -- what the page reads (mosaic.live.api.Source) -------------------------------------
    def board(self, sweep: str) -> Board | None:
        """The board of ``sweep`` (``id`` or ``id-token``), else the latest sweep's."""
        if sweep:
            for (sweep_id, token), board in reversed(self.boards.items()):
                if sweep in (str(sweep_id), f"{sweep_id}-{token}"):
                    return board
        return next(reversed(self.boards.values()), None)

    def sweeps(self) -> list[dict[str, Any]]:
        """The sweeps this scheduler keeps, the latest first."""
        return [{"id": f"{sweep_id}-{token}", "label": f"sweep {sweep_id} ({board.kind or 'run'}, {len(board.runs)} runs)"}
                for (sweep_id, token), board in reversed(self.boards.items())]

    def judge(self, board: Board) -> Judge:
        """The judge of ``board``."""
        return self.judges.setdefault((board.sweep_id or 0, board.token), Judge())

    def curve(self, board: Board, run_id: int) -> list[dict[str, Any]] | None:
        """None: the board's own curve of the run (at most 24 points)."""
        return None

    def log(self, board: Board, run_id: int) -> Path | None:
        """The run's log, when the scheduler sees the driver's run files (the embedded cluster)."""
        return api.log_file(board.run_files, run_id)


def driver_records(statuses: Sequence[tuple[int, RunStatus, str]] = (),
                   decisions: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """What only the driver knows, as records of the sweep's topic for the page: runs' statuses
    (``(run_id, status, text)``: a search's stops) and a search's decisions (rows of the
    ``decisions`` table, their plain values). Workers and the driver's own reading of the topic
    skip them."""
    records: list[dict[str, Any]] = [{"event": _STATUS, "run_id": run_id, "status": str(status), "text": text}
                                     for run_id, status, text in statuses]
    for row in decisions:
        records.append({"event": _DECISION, **{k: v for k, v in row.items() if v is None or isinstance(v, str | int | float | bool)}})
    return records


def show_plan(client: Any, message: dict[str, Any]) -> bool:
    """Hand a sweep's plan to the scheduler's page (False: no page there)."""
    try:
        client.run_on_scheduler(_take_plan, message)
    except Exception:  # noqa: BLE001 - the page is a view: the sweep runs without it
        return False
    return True


def end_sweep(client: Any, sweep_id: int, token: str) -> None:
    """Tell the scheduler's page that a sweep's driver is done (nothing when there is no page)."""
    with contextlib.suppress(Exception):
        client.run_on_scheduler(_end_sweep, sweep_id, token)


def _page(scheduler: Any) -> MosaicPage | None:
    page = scheduler.plugins.get(MosaicPage.name)
    return page if isinstance(page, MosaicPage) else None


def _take_plan(message: dict[str, Any], dask_scheduler: Any = None) -> bool:
    page = _page(dask_scheduler)
    if page is not None:
        page.take_plan(message)
    return page is not None


def _end_sweep(sweep_id: int, token: str, dask_scheduler: Any = None) -> None:
    page = _page(dask_scheduler)
    if page is not None:
        page.end_sweep(sweep_id, token)


class _Handler(web.RequestHandler):
    def initialize(self, page: MosaicPage) -> None:
        self.page = page

    def get(self) -> None:
        query = {name: self.get_query_argument(name) for name in self.request.query_arguments}
        accepts = "gzip" in self.request.headers.get("Accept-Encoding", "")
        path = self.request.path
        response = api.respond(self.page, path[path.rfind(PAGE):], query, gzipped=accepts)
        self.set_status(response.status)
        self.set_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.set_header(name, value)
        self.write(response.body)


class LazyDashboard(SchedulerPlugin):
    """Dask's bokeh dashboard, built when a page of it is first asked for.

    Building it costs the scheduler's process a second or more of CPU (importing bokeh and
    Dask's dashboard components) — on a small machine, time taken from the workers' start
    when the scheduler is embedded in the driver. The embedded scheduler starts without it;
    this plugin answers any path the HTTP server does not know (``/status``, ``/``...) by
    connecting the dashboard, then redirecting to the same address, now served by bokeh.
    """

    name = "mosaic-lazy-dashboard"
    idempotent = True

    def __init__(self) -> None:
        self.scheduler: Any = None
        self.stand_in: web.Application | None = None

    async def start(self, scheduler: Any) -> None:
        """Put the stand-in behind the scheduler's own routes (tried after them)."""
        app = getattr(scheduler, "http_application", None)
        if app is None or not hasattr(app, "applications") or getattr(scheduler, "http_server", None) is None:
            return
        self.scheduler = scheduler
        self.stand_in = web.Application([(r"/.*", _LazyHandler, {"plugin": self})])
        app.applications.append(self.stand_in)

    def connect(self) -> None:
        """Build the dashboard (once) in place of the stand-in."""
        if self.stand_in is None:
            return
        import distributed.dashboard.scheduler  # the import this class defers

        scheduler = self.scheduler
        scheduler.http_application.applications.remove(self.stand_in)
        self.stand_in = None
        # the embedded scheduler serves from "/" (Scheduler's default http_prefix)
        distributed.dashboard.scheduler.connect(scheduler.http_application, scheduler.http_server, scheduler, prefix="/")


class _LazyHandler(web.RequestHandler):
    def initialize(self, plugin: LazyDashboard) -> None:
        self.plugin = plugin

    def get(self) -> None:
        self.plugin.connect()
        self.redirect(self.request.uri or "/", permanent=False)
