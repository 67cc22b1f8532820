"""The worker's entry point: :func:`execute_batch`, the one function the driver's cluster
submits (:meth:`mosaic.exec.cluster.connect.Cluster.submit`).

It announces each run's start and end on the sweep's topic, with the run's epochs in between
(:mod:`mosaic.exec.cluster.announcer`), and trains the run through
:func:`mosaic.exec.training.run.execute_run`. That import is made when a task runs, on the
worker (where :mod:`~mosaic.exec.cluster.worker_start` and the worker's setup have loaded it
already): the driver imports this module to submit the function, and must not load torch.
"""

from __future__ import annotations

from mosaic.exec.cluster.announcer import Announcer, EpochReporter
from mosaic.exec.wire.events import RunEvent
from mosaic.exec.wire.task import RunOutcome, RunTask, worker_label
from mosaic.text import last_line

#: the most of a failed run's last traceback line its end record carries (the page shows it)
ERROR_CHARS = 500


def execute_batch(tasks: list[RunTask], topic: str, key: str) -> list[RunOutcome]:
    """Train ``tasks`` one after the other on this worker; their outcomes in the same order.

    Each run is announced as it starts (the task's first start goes out at once) and as it
    ends: the records arrive in order, so when the worker dies the driver knows which runs
    finished (their results were lost with the task) and, for a run alone in its task,
    whether it had started.
    """
    from mosaic.exec.training.run import (
        execute_run,  # the worker side: torch stays out of the driver
    )

    channel = Announcer.here(topic)
    alone = len(tasks) == 1
    worker = worker_label()
    outcomes: list[RunOutcome] = []
    try:
        for task in tasks:
            device = task.device_here()
            reporter = EpochReporter(task.run_id, task.attempt, task.epochs, channel)
            # a task's first start goes out at once (a pause leaves started tasks running),
            # confirmed when the run is alone: if it kills its worker, the driver must know it
            # had started. Later starts in a batch wait for the next send (at most
            # SEND_EVERY_S; no run is blamed inside a batch): one event per half second, not per run
            channel.send(RunEvent.start(task.run_id, key, worker, device), now=not outcomes, confirmed=alone)
            outcome = execute_run(task, [reporter])
            outcomes.append(outcome)
            error = last_line(outcome.error)[:ERROR_CHARS] if outcome.error else ""
            channel.send(RunEvent.end(task.run_id, key, worker, device, outcome.status, error))
    finally:
        channel.flush()
    return outcomes
