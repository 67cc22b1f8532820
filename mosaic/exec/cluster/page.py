"""Mosaic's page beside Dask's dashboard: every run's epoch k of N and its latest losses.

Why a page of our own: Dask's pages show tasks (their keys carry the run id:
``run-<sweep>-<run>-<token>``, or ``runs-...`` for a batch of short runs) but know nothing
of epochs. Workers publish their runs' :class:`~mosaic.exec.wire.events.RunEvent` records on
the sweep's topic (:mod:`mosaic.exec.cluster.announcer`); :class:`MosaicPage`, a scheduler
plugin, keeps the latest row per run and serves it on the scheduler's own HTTP server, next
to ``/status``:

- ``/mosaic``: an HTML table refreshed every 2 seconds (no JavaScript, no bokeh);
- ``/mosaic.json``: the same rows as JSON.

The plugin is installed when a sweep starts (Mosaic must be importable on the scheduler; when
it is not, the sweep runs without the page and says so once). It keeps at most
:data:`MAX_RUNS` runs, the oldest forgotten first. :class:`LazyDashboard` builds Dask's own
dashboard on its first visit.
"""

from __future__ import annotations

import collections
import html
import json
import time
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin
from tornado import web

from mosaic.exec.wire.events import END, START, RunEvent, parse_run_key, parse_topic, read_events
from mosaic.store.status import RunStatus
from mosaic.text import format_cell

PAGE = "/mosaic"
MAX_RUNS = 5000
_ENDED = ("finished", "failed")
_STATES = {"queued": "queued", "processing": "running", "memory": "finished", "erred": "failed", "released": "pending"}


class MosaicPage(SchedulerPlugin):
    """Keep each run's latest state and epoch; serve them on ``/mosaic`` and ``/mosaic.json``."""

    name = "mosaic-page"
    idempotent = True  # one page per scheduler, shared by every sweep sent to it

    def __init__(self) -> None:
        self.runs: collections.OrderedDict[tuple[int, str, int], dict[str, Any]] = collections.OrderedDict()

    async def start(self, scheduler: Any) -> None:
        """Add the two routes to the scheduler's HTTP server."""
        app = getattr(scheduler, "http_application", None)
        if app is not None:
            app.add_handlers(r".*$", [(PAGE, _HtmlHandler, {"page": self}), (PAGE + r"\.json", _JsonHandler, {"page": self})])

    def _row(self, sweep_id: int, token: str, run_id: int) -> dict[str, Any]:
        ident = (sweep_id, token, run_id)
        row = self.runs.get(ident)
        if row is None:
            row = self.runs[ident] = {"sweep": sweep_id, "run": run_id, "state": "pending", "epoch": 0, "epochs": None}
            while len(self.runs) > MAX_RUNS:
                self.runs.popitem(last=False)
        row["updated"] = time.time()
        return row

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        """Follow the tasks of Mosaic runs (queued, running, finished, failed)."""
        parsed = parse_run_key(key)
        if parsed and finish in _STATES:
            sweep_id, run_id, token = parsed
            known = self.runs.get((sweep_id, token, run_id))
            if known is not None and (finish == "released" or (finish == "memory" and known["state"] in _ENDED)):
                return  # a finished run's result released by the driver, or its end already told: keep its state
            self._row(sweep_id, token, run_id)["state"] = _STATES[finish]

    def log_event(self, topic: str, msg: Any) -> None:
        """Take the records of a sweep's topic: runs' starts, epochs and ends (runs in a batch
        have no task of their own to follow)."""
        parsed = parse_topic(topic)
        if parsed is None:
            return
        for event in read_events(msg):
            self._take(*parsed, event)

    def _take(self, sweep_id: int, token: str, event: RunEvent) -> None:
        row = self._row(sweep_id, token, event.run_id)
        if event.kind == START:
            row["state"] = "running"
        elif event.kind == END:
            row["state"] = "finished" if event.status == RunStatus.DONE else "failed"
        else:
            row.update({"attempt": event.attempt, "epoch": event.epoch, "epochs": event.epochs, **(event.values or {})})
            row["state"] = "training" if row["epoch"] != row.get("epochs") else "last epoch done"

    def rows(self) -> list[dict[str, Any]]:
        """Every run known, most recently updated first."""
        return sorted(self.runs.values(), key=lambda r: r["updated"], reverse=True)


class _Handler(web.RequestHandler):
    def initialize(self, page: MosaicPage) -> None:
        self.page = page


class _JsonHandler(_Handler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"runs": self.page.rows()}))


class _HtmlHandler(_Handler):
    def get(self) -> None:
        columns = ("sweep", "run", "attempt", "state", "epoch", "epochs", "train_loss", "test_loss", "train_acc", "test_acc", "seconds")
        head = "".join(f"<th>{c}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(format_cell(row.get(c)))}</td>" for c in columns) + "</tr>" for row in self.page.rows()
        )
        self.write(
            '<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">'
            "<title>Mosaic runs</title><style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
            f'<h3>Mosaic runs <small><a href="status">Dask dashboard</a> · <a href="mosaic.json">json</a></small></h3>'
            f"<table><tr>{head}</tr>{body or '<tr><td colspan=11>no run yet</td></tr>'}</table></body></html>"
        )


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
