"""How many runs one Dask task trains: short runs go in batches, long ones alone.

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
