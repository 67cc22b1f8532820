"""Mosaic's page beside Dask's dashboard: every run's epoch k of N and its latest losses.

Why a page of our own: Dask's pages show tasks (their keys carry the run id:
``run-<sweep>-<run>-<token>``, or ``runs-...`` for a batch of short runs) but know nothing
of epochs. A worker tells what its runs do on the sweep's topic (:func:`sweep_topic`) through
an :class:`Announcer`: each run's start and end, and each epoch (:class:`EpochReporter`, a
training callback). Records go out together, in order, in one Dask event (a list): at the
start of a task's first run, and otherwise at most every :data:`SEND_EVERY_S` seconds, so a
batch of short runs costs about one event per half second, not three per run. The driver
subscribes to the topic; :class:`MosaicPage`, a scheduler plugin, keeps the latest row per
run and serves it on the scheduler's own HTTP server, next to ``/status``:

- ``/mosaic``: an HTML table refreshed every 2 seconds (no JavaScript, no bokeh);
- ``/mosaic.json``: the same rows as JSON.

The plugin is installed when a sweep starts (Mosaic must be importable on the scheduler; when
it is not, the sweep runs without the page and says so once). It keeps at most
:data:`MAX_RUNS` runs, the oldest forgotten first.
"""

from __future__ import annotations

import collections
import html
import json
import re
import time
from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin
from tornado import web

PAGE = "/mosaic"
MAX_RUNS = 5000
_KEY = re.compile(r"^run-(\d+)-(\d+)-([0-9a-f]+)(?:-\d+)?$")
_TOPIC = re.compile(r"^mosaic-(\d+)-([0-9a-f]+)$")
#: Longest a worker keeps records (epochs, run ends) before sending them, in seconds.
SEND_EVERY_S = 0.5
_ENDED = ("finished", "failed")
_STATES = {"queued": "queued", "processing": "running", "memory": "finished", "erred": "failed", "released": "pending"}


def run_key(sweep_id: int, run_id: int, token: str, resubmit: int = 0) -> str:
    """The Dask key of a run's task (the token tells apart sweeps of different stores)."""
    return f"run-{sweep_id}-{run_id}-{token}" + (f"-{resubmit}" if resubmit else "")


def sweep_topic(sweep_id: int, token: str) -> str:
    """The event topic on which a sweep's runs report their start, epochs and end."""
    return f"mosaic-{sweep_id}-{token}"


class Announcer:
    """A worker's buffered channel to a sweep's topic (one per task: no thread shares it).

    ``send`` keeps a record (a dict with ``event``: ``start``, ``epoch`` or ``end``) and sends
    everything kept, in order, as one event when asked to (``now``) or when the last send is
    :data:`SEND_EVERY_S` old. Outside a Dask worker nothing is sent.
    """

    def __init__(self, topic: str, worker: Any = None) -> None:
        self.topic = topic
        self.worker = worker
        self.records: list[dict[str, Any]] = []
        self.sent = time.monotonic()

    @classmethod
    def here(cls, topic: str) -> Announcer:
        """An announcer for this process's Dask worker (a silent one outside a worker)."""
        try:
            from distributed import get_worker

            return cls(topic, get_worker())
        except ValueError:  # not in a worker
            return cls(topic)

    def send(self, record: dict[str, Any], now: bool = False, confirmed: bool = False) -> None:
        """Keep ``record``; send all kept records if ``now`` or if it is time. ``confirmed``:
        send them at once and wait until the scheduler has them (a run's start, when the run
        is alone in its task: if it kills its worker, the driver must know it had started)."""
        self.records.append(record)
        if confirmed:
            self.flush(confirmed=True)
        elif now or time.monotonic() - self.sent >= SEND_EVERY_S:
            self.flush()

    def flush(self, confirmed: bool = False) -> None:
        """Send the kept records, if any (``confirmed``: through a call the scheduler answers)."""
        if self.records and self.worker is not None:
            if confirmed:
                try:
                    from distributed.utils import sync

                    sync(self.worker.loop, self.worker.scheduler.log_event, topic=self.topic, msg=self.records, callback_timeout=10)
                except Exception:  # noqa: BLE001 - the stream still carries them
                    self.worker.log_event(self.topic, self.records)
            else:
                self.worker.log_event(self.topic, self.records)
        self.records = []
        self.sent = time.monotonic()


class EpochReporter:
    """Report ``{event: epoch, run_id, attempt, epoch, epochs, losses, accuracies, seconds}``
    after every epoch through :attr:`channel` (set by the task that runs it).

    A training callback (the two methods of :class:`mosaic.exec.train.Callback`, not a subclass,
    so that this module, which the scheduler imports for the page, needs no torch). Reports
    nothing without a channel (a run called directly, in a test).
    """

    def __init__(self, run_id: int, attempt: int, epochs: int) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.epochs = epochs
        self.total = epochs
        self.channel: Announcer | None = None

    def on_train_begin(self, history: Sequence[dict[str, Any]]) -> None:
        """The target epoch count: the epochs already trained plus this attempt's."""
        self.total = len(history) + self.epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Hand this epoch's row to the channel (never fails the run)."""
        if self.channel is None:
            return
        row = {k: _number(v) for k, v in logs.items() if k in ("train_loss", "test_loss", "train_acc", "test_acc", "seconds")}
        self.channel.send({"event": "epoch", "run_id": self.run_id, "attempt": self.attempt, "epoch": epoch, "epochs": self.total, **row})


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


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
        match = _KEY.match(key) if isinstance(key, str) else None
        if match and finish in _STATES:
            sweep_id, run_id, token = int(match[1]), int(match[2]), match[3]
            known = self.runs.get((sweep_id, token, run_id))
            if known is not None and (finish == "released" or (finish == "memory" and known["state"] in _ENDED)):
                return  # a finished run's result released by the driver, or its end already told: keep its state
            self._row(sweep_id, token, run_id)["state"] = _STATES[finish]

    def log_event(self, topic: str, msg: Any) -> None:
        """Take the records of a sweep's topic: runs' starts, epochs and ends (runs in a batch
        have no task of their own to follow)."""
        match = _TOPIC.match(topic) if isinstance(topic, str) else None
        if not match:
            return
        for record in msg if isinstance(msg, list | tuple) else [msg]:  # a list arrives as a tuple
            if isinstance(record, dict) and "run_id" in record:
                self._take(int(match[1]), match[2], record)

    def _take(self, sweep_id: int, token: str, record: dict[str, Any]) -> None:
        row = self._row(sweep_id, token, int(record["run_id"]))
        event = record.get("event")
        if event == "start":
            row["state"] = "running"
        elif event == "end":
            row["state"] = "finished" if record.get("status") == "done" else "failed"
        elif event == "epoch":
            row.update({k: v for k, v in record.items() if k not in ("run_id", "event")})
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
            "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>" for row in self.page.rows()
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

    Building it costs the scheduler's process about 1.3 s of CPU (importing bokeh and Dask's
    dashboard components) — on a small machine, time taken from the workers' start when the
    scheduler is embedded in the driver (issue 11). The embedded scheduler starts without it;
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


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
