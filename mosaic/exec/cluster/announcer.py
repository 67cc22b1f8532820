"""A worker's channel to its sweep: the :class:`RunEvent` records of its runs, sent on the
sweep's topic with Dask's ``log_event``.

The scheduler hands them to the Mosaic page (:mod:`mosaic.exec.cluster.page`) and to every
client subscribed to the topic (the driver: running rows and live history). Records go out
together, in order, in one Dask event (a list): at the start of a task's first run, and
otherwise at most every :data:`SEND_EVERY_S` seconds, so a batch of short runs costs about
one event per half second, not three per run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mosaic.exec.wire.callbacks import Callback
from mosaic.exec.wire.events import RunEvent

#: Longest a worker keeps records (epochs, run ends) before sending them, in seconds.
SEND_EVERY_S = 0.5


class Announcer:
    """A worker's buffered channel to a sweep's topic (one per task: no thread shares it).

    ``send`` keeps a record (a :class:`RunEvent`: start, epoch or end) and sends
    everything kept, in order, as one event when asked to (``now``) or when the last send is
    :data:`SEND_EVERY_S` old. Outside a Dask worker nothing is sent.
    """

    def __init__(self, topic: str, worker: Any = None) -> None:
        self.topic = topic
        self.worker = worker
        self.records: list[dict[str, Any]] = []  # RunEvent messages, in order
        self.sent = time.monotonic()

    @classmethod
    def here(cls, topic: str) -> Announcer:
        """An announcer for this process's Dask worker (a silent one outside a worker)."""
        try:
            from distributed import get_worker

            return cls(topic, get_worker())
        except ValueError:  # not in a worker
            return cls(topic)

    def send(self, event: RunEvent, now: bool = False, confirmed: bool = False) -> None:
        """Keep ``event``; send all kept records if ``now`` or if it is time. ``confirmed``:
        send them at once and wait until the scheduler has them (a run's start, when the run
        is alone in its task: if it kills its worker, the driver must know it had started)."""
        self.records.append(event.message())
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


class EpochReporter(Callback):
    """A training callback that sends each epoch of a run (its :class:`RunEvent`) through
    ``channel``; nothing without a channel (a run called directly, in a test)."""

    def __init__(self, run_id: int, attempt: int, epochs: int, channel: Announcer | None = None) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.epochs = epochs
        self.total = epochs
        self.channel = channel

    def on_train_begin(self, history: Sequence[dict[str, Any]]) -> None:
        """The target epoch count: the epochs already trained plus this attempt's."""
        self.total = len(history) + self.epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Hand this epoch's record to the channel (never fails the run)."""
        if self.channel is not None:
            self.channel.send(RunEvent.epoch_end(self.run_id, self.attempt, epoch, self.total, logs))
