"""How runs go to the cluster: how many runs one Dask task trains (short runs go in batches,
long ones alone), the window of tasks in flight (:class:`Window`) and the fetching of their
outcomes (:class:`Fetcher`).

Each Dask task costs the scheduler, the driver and the worker a few milliseconds whatever it
does; for runs of tens of milliseconds (a 1-epoch run on 40 samples) that is a third of the
sweep. :class:`BatchSizer` sizes batches the way joblib's ``batch_size="auto"`` does: it
starts with one run per task, measures how long runs take on the workers, and then gives a
task as many runs as fill about :data:`TARGET_S` seconds. It never takes more than a share
of what is left, so the last runs are still spread over every worker.

``[MONITOR] runs_per_task = N`` fixes the size instead (1: every run alone, as before batching).

A batch changes nothing a run records: each run is trained, seeded, checkpointed and
reported exactly as alone (see :func:`mosaic.exec.cluster.entry.execute_batch`).
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mosaic.exec.cluster.connect import Cluster
from mosaic.exec.cluster.plugins import MosaicPlugin
from mosaic.exec.driver.policy import FaultPolicy
from mosaic.exec.wire.task import RunOutcome, RunTask
from mosaic.store.records import PlannedRun

#: How long fetching a finished run's outcome may take before it counts as lost with its worker
#: (a false alarm only costs a resubmission that loads the final checkpoint and trains no epoch).
FETCH_TIMEOUT_S = 5.0
#: About how long one task's runs should take together (seconds).
TARGET_S = 1.0
#: The most runs in one task.
MAX_BATCH = 64
#: Weight of the newest task's mean run time in the estimate.
SMOOTHING = 0.3


class BatchSizer:
    """Batch sizes from the run times measured so far."""

    def __init__(self, slots: int, fixed: int | None = None, target_s: float = TARGET_S, max_size: int = MAX_BATCH) -> None:
        """``fixed``: every task takes that many runs (``[MONITOR] runs_per_task``); None: auto."""
        self.slots = max(1, slots)
        self.fixed = fixed
        self.target_s = target_s
        self.max_size = max_size
        self.mean_s: float | None = None  # smoothed seconds per run
        self.measured = 0  # runs measured

    def record(self, seconds: list[float]) -> None:
        """Take the worker-side seconds of one task's runs."""
        if not seconds:
            return
        mean = sum(seconds) / len(seconds)
        self.mean_s = mean if self.mean_s is None else SMOOTHING * mean + (1 - SMOOTHING) * self.mean_s
        self.measured += len(seconds)

    def size(self, queued: int, slots: int | None = None) -> int:
        """How many of the ``queued`` runs the next task takes (at least 1)."""
        if self.fixed is not None:
            return max(1, min(self.fixed, queued))
        if slots is not None:
            self.slots = max(1, slots)
        if self.mean_s is None or self.measured < self.slots:  # one run per worker measured first
            return 1
        fill = int(self.target_s / max(self.mean_s, 1e-6))
        share = queued // (2 * self.slots)  # leave every worker something at the end
        return max(1, min(fill, share, self.max_size))


class Fetcher:
    """Fetches each finished task's outcomes at once, in a pool of its own (one slow fetch holds
    no other), so that its worker, dying later while running another task, cannot take them along."""

    def __init__(self) -> None:
        self.fetched: dict[str, list[RunOutcome]] = {}  # task key -> outcomes
        self.pool = ThreadPoolExecutor(4, thread_name_prefix="mosaic-fetch")

    def fetch(self, future: Any) -> None:
        """A future's done callback: fetch its outcomes if it finished."""
        if future.status == "finished":
            with contextlib.suppress(RuntimeError):  # the pool is shut down: the sweep ended
                self.pool.submit(self._fetch_now, future)

    def _fetch_now(self, future: Any) -> None:
        with contextlib.suppress(Exception):  # the sweep's collect finds out what happened
            self.fetched[future.key] = future.result(timeout=FETCH_TIMEOUT_S)

    def take(self, key: str) -> list[RunOutcome] | None:
        """The outcomes fetched for the task ``key`` (None when none were)."""
        return self.fetched.pop(key, None)

    def close(self) -> None:
        """Stop fetching (the sweep is over)."""
        self.pool.shutdown(wait=False, cancel_futures=True)


class Window:
    """The tasks in flight: at most about two per worker slot, so a pause stops submitting at
    once; each task takes as many queued runs as :class:`BatchSizer` says."""

    def __init__(self, cluster: Cluster, plugin: MosaicPlugin, sizer: BatchSizer, policy: FaultPolicy,
                 task: Callable[[PlannedRun], RunTask], on_done: Callable[[Any], None]) -> None:
        """``task``: a planned run's RunTask; ``on_done``: called with each future as it lands."""
        self.cluster = cluster
        self.plugin = plugin
        self.sizer = sizer
        self.policy = policy
        self.task = task
        self.on_done = on_done
        self.inflight: dict[str, tuple[Any, list[PlannedRun]]] = {}
        self.futures = cluster.completions()
        self.slots = cluster.slots
        self.serial = 0
        self.submitted = 0  # Dask tasks
        self.sent: collections.Counter[int] = collections.Counter()  # run -> its tasks so far (its key says which)

    @property
    def size(self) -> int:
        """How many tasks may be in flight."""
        return 2 * self.slots + 2

    def resize(self) -> None:
        """Follow the cluster's worker count."""
        self.slots = self.cluster.slots

    def fill(self, queue: collections.deque[PlannedRun]) -> None:
        """Submit tasks from the head of ``queue`` until the window is full."""
        policy = self.policy
        while queue and len(self.inflight) < self.size:
            size = self.sizer.size(len(queue), self.slots)
            batch = [queue.popleft()]
            while len(batch) < size and queue and policy.may_share(batch[0].run_id, queue[0].run_id):
                batch.append(queue.popleft())
            if len(batch) == 1:  # a run's every task has a key of its own (a rung's, a resubmission's)
                key = self.plugin.key(batch[0].run_id, self.sent[batch[0].run_id])
            else:
                self.serial += 1
                key = self.plugin.batch_key(batch[0].run_id, len(batch), self.serial)
            self.sent.update(planned.run_id for planned in batch)
            future = self.cluster.submit([self.task(planned) for planned in batch], self.plugin.topic, key)
            future.add_done_callback(self.on_done)
            self.inflight[key] = (future, batch)
            self.futures.add(future)
            self.submitted += 1

    def take_done(self) -> list[tuple[Any, list[PlannedRun] | None]]:
        """The futures that landed since the last call, with their runs (None: a task the
        window no longer holds, cancelled by a pause); release each once handled."""
        done: list[tuple[Any, list[PlannedRun] | None]] = []
        for future in self.futures.next_batch(block=False) if self.futures.has_ready() else []:
            entry = self.inflight.pop(future.key, None)
            done.append((future, entry[1] if entry is not None else None))
        return done

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a task to land."""
        if not self.futures.has_ready():
            # as_completed notifies this condition when a future lands (as its __next__ waits)
            with self.futures.thread_condition:
                self.futures.thread_condition.wait(timeout=timeout)

    def clear(self) -> None:
        """Forget every future (the sweep is over)."""
        self.futures.clear()
