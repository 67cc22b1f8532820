"""The records that travel up: what a worker publishes about its runs (:class:`RunEvent`),
the names they travel under, and what a sweep tells its caller (:class:`Event`).

A worker tells the driver and the scheduler's Mosaic page what its runs do on the sweep's
topic (:func:`sweep_topic`): each run's start, each epoch's losses and the run's end, as
:class:`RunEvent` records. On the wire a record is a plain dict (:meth:`RunEvent.message`),
which Dask carries without pickling; :func:`read_events` turns a topic's message back into
records. Task keys (:func:`run_key`, :func:`batch_key`) carry the sweep and run ids, so the
page can follow a run's task too.

The driver (and the cluster, while it starts) tells its caller what happens through
``on_event(Event)``; :mod:`mosaic.console` renders them on a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mosaic.store.status import RunStatus

START = "start"
EPOCH = "epoch"
END = "end"
#: The values an epoch record carries (each a float or None), as its history row names them.
EPOCH_FIELDS: tuple[str, ...] = ("train_loss", "test_loss", "train_acc", "test_acc", "seconds")

_RUN_KEY = re.compile(r"^run-(\d+)-(\d+)-([0-9a-f]+)(?:-\d+)?$")
_TOPIC = re.compile(r"^mosaic-(\d+)-([0-9a-f]+)$")


def run_key(sweep_id: int, run_id: int, token: str, resubmit: int = 0) -> str:
    """The Dask key of a run alone in its task: ``run-<sweep>-<run>-<token>[-<resubmit>]``
    (the token tells apart sweeps of different stores)."""
    return f"run-{sweep_id}-{run_id}-{token}" + (f"-{resubmit}" if resubmit else "")


def batch_key(sweep_id: int, first_run: int, count: int, token: str, serial: int) -> str:
    """The Dask key of a batch of runs: ``runs-<sweep>-<first run>x<count>-<token>-<serial>``."""
    return f"runs-{sweep_id}-{first_run}x{count}-{token}-{serial}"


def parse_run_key(key: object) -> tuple[int, int, str] | None:
    """``(sweep_id, run_id, token)`` of a run's own task key; None for any other key."""
    match = _RUN_KEY.match(key) if isinstance(key, str) else None
    return (int(match[1]), int(match[2]), match[3]) if match else None


def sweep_topic(sweep_id: int, token: str) -> str:
    """The event topic on which a sweep's runs report their start, epochs and end."""
    return f"mosaic-{sweep_id}-{token}"


def parse_topic(topic: object) -> tuple[int, str] | None:
    """``(sweep_id, token)`` of a sweep's topic; None for any other topic."""
    match = _TOPIC.match(topic) if isinstance(topic, str) else None
    return (int(match[1]), match[2]) if match else None


@dataclass(frozen=True)
class RunEvent:
    """One thing a run did on its worker.

    ``start``/``end``: the task ``key`` it runs in, its ``worker`` and ``device`` (``end``: its
    ``status``, and for a failed run the ``error``'s last line, shown on the Mosaic page).
    ``epoch``: its ``attempt``, the ``epoch`` just trained, the planned last epoch (``epochs``)
    and that epoch's values (:data:`EPOCH_FIELDS`).
    """

    kind: str
    run_id: int
    key: str = ""
    worker: str = ""
    device: str = ""
    status: RunStatus | None = None
    attempt: int = 0
    epoch: int = 0
    epochs: int = 0
    values: Mapping[str, float | None] | None = None
    error: str = ""

    @classmethod
    def start(cls, run_id: int, key: str, worker: str, device: str) -> RunEvent:
        """A run starts in task ``key`` on ``worker``."""
        return cls(START, run_id, key=key, worker=worker, device=device)

    @classmethod
    def end(cls, run_id: int, key: str, worker: str, device: str, status: RunStatus, error: str = "") -> RunEvent:
        """A run ended with ``status`` (its outcome travels with the task's result; ``error``: the
        last line of a failed run's traceback)."""
        return cls(END, run_id, key=key, worker=worker, device=device, status=status, error=error)

    @classmethod
    def epoch_end(cls, run_id: int, attempt: int, epoch: int, epochs: int, logs: Mapping[str, Any]) -> RunEvent:
        """A run trained ``epoch`` of ``epochs``; ``logs`` is the epoch's history row."""
        return cls(EPOCH, run_id, attempt=attempt, epoch=epoch, epochs=epochs,
                   values={k: _number(logs[k]) for k in EPOCH_FIELDS if k in logs})

    def value(self, name: str) -> float | None:
        """One of the epoch's :data:`EPOCH_FIELDS` (None when it has none)."""
        return (self.values or {}).get(name)

    def message(self) -> dict[str, Any]:
        """The record as it travels: a plain dict with ``event`` naming its kind."""
        if self.kind == EPOCH:
            return {"event": EPOCH, "run_id": self.run_id, "attempt": self.attempt, "epoch": self.epoch,
                    "epochs": self.epochs, **(self.values or {})}
        message = {"event": self.kind, "run_id": self.run_id, "key": self.key, "worker": self.worker, "device": self.device}
        if self.kind == END:
            message["status"] = str(self.status)
            if self.error:
                message["error"] = self.error
        return message

    @classmethod
    def from_message(cls, message: object) -> RunEvent | None:
        """The record a message holds; None for anything that is not one."""
        if not isinstance(message, Mapping) or message.get("event") not in (START, EPOCH, END):
            return None
        try:
            run_id = int(message["run_id"])
            if message["event"] == EPOCH:
                return cls(EPOCH, run_id, attempt=int(message["attempt"]), epoch=int(message["epoch"]),
                           epochs=int(message.get("epochs") or message["epoch"]),
                           values={k: _number(message[k]) for k in EPOCH_FIELDS if k in message})
            status = RunStatus(message["status"]) if message["event"] == END else None
            return cls(str(message["event"]), run_id, key=str(message.get("key") or ""),
                       worker=str(message.get("worker") or ""), device=str(message.get("device") or ""), status=status,
                       error=str(message.get("error") or ""))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Event:
    """Something that happened during a sweep.

    kinds: ``cluster`` (text: where; link: dashboard; page: Mosaic page; total: workers), ``start`` (total runs,
    text: store), ``running``, ``finished`` (status, text: result or last error line),
    ``paused`` (total: runs saved, text: pipeline file), ``interrupted``, ``end``, ``warning``,
    ``decision`` (a search's cut at a rung; total: runs stopped, text: what was kept and stopped).
    """

    kind: str
    sweep_id: int | None = None
    run_id: int | None = None
    status: str | None = None
    text: str = ""
    total: int = 0
    worker: str | None = None
    device: str | None = None
    link: str | None = None
    page: str | None = None


def read_events(message: object) -> list[RunEvent]:
    """The records of one event on a sweep's topic (a list of them; Dask hands it as a tuple)."""
    records = message if isinstance(message, list | tuple) else [message]
    return [event for record in records if (event := RunEvent.from_message(record)) is not None]


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
