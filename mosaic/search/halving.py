"""Successive halving over a grid: synchronous rungs per dataset, replicates judged together.

A *pipeline* is a (dataset, model) pair (:func:`mosaic.sweep.dataset_and_model`); its runs
are its replicates. Every run trains to the first rung (``min_epochs``). When every live run
of a dataset has reached the rung (a run that failed, or stopped itself early, is no longer
live), the dataset's pipelines are ranked on the mean of their replicates' metric at the rung
epoch, and the best ``1/reduction_factor`` of them (at least one) go on to the next rung; the
others are stopped there. After the last rung (below the planned epochs) the survivors train
to their planned epochs.

Deterministic by construction: a cut depends only on the values at the rung epoch, which
depend only on the config and the seeds; ties (and non-finite values, which rank last) are
broken by the pipeline's first run id, never by arrival order. :class:`Halving` is the state
machine the driver feeds (:meth:`Halving.reached`, :meth:`Halving.dropped`); :func:`judge`,
the cut itself, is also what :mod:`mosaic.search.replay` runs on a finished store.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mosaic.search.spec import SearchSpec


@dataclass(frozen=True)
class Entrant:
    """One run of the competition: its id, its dataset and model, its planned epochs."""

    run_id: int
    dataset: str
    model: str
    total: int


@dataclass(frozen=True)
class Cut:
    """One decision: a pipeline kept or stopped at a rung (a row of the ``decisions`` table)."""

    dataset: str
    model: str
    rung: int
    runs: tuple[int, ...]
    metric: str
    value: float
    cutoff: float
    kept: bool
    rank: int
    pipelines: int
    reason: str

    def row(self) -> dict[str, Any]:
        """The ``decisions`` row (without its time)."""
        return {
            "dataset": self.dataset, "model": self.model, "rung": self.rung,
            "runs": ",".join(map(str, self.runs)), "metric": self.metric,
            "value": self.value if math.isfinite(self.value) else None,
            "cutoff": self.cutoff if math.isfinite(self.cutoff) else None,
            "kept": self.kept, "rank": self.rank, "pipelines": self.pipelines, "reason": self.reason,
        }


@dataclass
class Step:
    """What the driver does after a run reached its rung or left the competition.

    ``final``: the run that came in has ended (its status is final: done, or the failure it
    had); otherwise it waits for its dataset's cut. ``cuts``: decisions made now;
    ``resume``: runs to train to their next target; ``stop``: runs to mark ``stopped``.
    """

    final: bool = False
    cuts: list[Cut] = field(default_factory=list)
    resume: list[int] = field(default_factory=list)
    stop: list[int] = field(default_factory=list)


def judge(spec: SearchSpec, dataset: str, rung: int, pipelines: Mapping[str, Sequence[tuple[int, float]]]) -> list[Cut]:
    """The cut of one dataset at one rung: ``pipelines`` maps each model to its replicates'
    (run id, metric value at the rung epoch). Returns one :class:`Cut` per model, best first."""
    scored = []
    for model, values in pipelines.items():
        runs = tuple(sorted(run for run, _ in values))
        numbers = [value for _, value in values]
        mean = math.fsum(numbers) / len(numbers) if numbers and all(math.isfinite(v) for v in numbers) else math.nan
        scored.append((model, runs, mean))
    sign = -1.0 if spec.higher_is_better else 1.0
    scored.sort(key=lambda s: (not math.isfinite(s[2]), sign * s[2] if math.isfinite(s[2]) else 0.0, s[1][0]))
    keep = max(1, len(scored) // spec.reduction_factor)
    cutoff = scored[keep - 1][2]
    cuts = []
    for index, (model, runs, value) in enumerate(scored):
        rank, kept = index + 1, index < keep
        cuts.append(Cut(dataset, model, rung, runs, spec.metric, value, cutoff, kept, rank, len(scored),
                        _reason(spec, rank, len(scored), keep, value, cutoff, kept)))
    return cuts


def _reason(spec: SearchSpec, rank: int, count: int, keep: int, value: float, cutoff: float, kept: bool) -> str:
    if count == 1:
        return "the only pipeline left in its dataset"
    if not math.isfinite(value):
        return f"{spec.metric} is not a number at this rung (a replicate diverged)"
    place = f"rank {rank} of {count}"
    if kept:
        return f"{place}: in the best {keep} (1/{spec.reduction_factor})"
    side = "below" if spec.higher_is_better else "above"
    return f"{place}: mean {spec.metric} {value:.4g} {side} the cutoff {cutoff:.4g}"


class Halving:
    """The rung state of one sweep's runs.

    ``decided``: the decisions already in the store for these runs (a resumed sweep): run id
    -> [(rung, kept)]. A run kept at its rungs so far heads for the next one; a run with a
    ``stopped`` decision is in :attr:`stopped_before` (the driver marks it stopped at once).
    """

    def __init__(self, spec: SearchSpec, entrants: Iterable[Entrant],
                 decided: Mapping[int, Sequence[tuple[int, bool]]] | None = None) -> None:
        self.spec = spec
        self.entrants = {e.run_id: e for e in entrants}
        self.rungs = {e.run_id: spec.rungs(e.total) for e in self.entrants.values()}
        self.stage: dict[int, int] = {}  # run -> index of the rung it trains to next
        self.alive: set[int] = set()
        self.values: dict[int, float] = {}  # run -> its value at its current rung (arrived, waiting)
        self.stopped_before: list[int] = []
        for run_id in sorted(self.entrants):
            past = sorted((decided or {}).get(run_id, ()))
            if any(not kept for _, kept in past):
                self.stopped_before.append(run_id)
                continue
            self.stage[run_id] = sum(1 for rung, kept in past if kept and rung in self.rungs[run_id])
            self.alive.add(run_id)

    def target(self, run_id: int) -> int | None:
        """The epoch ``run_id`` trains to next: its next rung (None: its planned epochs)."""
        rungs = self.rungs.get(run_id, ())
        stage = self.stage.get(run_id, len(rungs))
        return rungs[stage] if run_id in self.alive and stage < len(rungs) else None

    def passed(self, run_id: int) -> bool:
        """True once ``run_id`` was kept at a rung: its next task goes on from that rung's checkpoint."""
        return self.stage.get(run_id, 0) > 0

    def reached(self, run_id: int, history: Sequence[Mapping[str, Any]]) -> Step:
        """``run_id`` ended a task with ``history`` (its every epoch so far)."""
        rung = self.target(run_id)
        if rung is None:  # trained to its planned epochs
            self.alive.discard(run_id)
            return Step(final=True)
        if len(history) < rung:  # it stopped itself before the rung (patience): it ends here
            return self._leave(run_id)
        raw = history[rung - 1].get(self.spec.metric)
        self.values[run_id] = float(raw) if isinstance(raw, (int, float)) else math.nan
        return self._settle(run_id)

    def dropped(self, run_id: int) -> Step:
        """``run_id`` failed (or was lost): it leaves the competition; its dataset may be ready."""
        return self._leave(run_id)

    def _leave(self, run_id: int) -> Step:
        if run_id not in self.alive:
            return Step(final=True)
        waiting = self.target(run_id) is not None
        self.alive.discard(run_id)
        self.values.pop(run_id, None)
        step = self._settle(run_id) if waiting else Step()
        step.final = True
        return step

    def _settle(self, run_id: int) -> Step:
        """Cut the dataset of ``run_id`` at its rung if every live run of it has arrived."""
        entrant = self.entrants[run_id]
        stage = self.stage.get(run_id, 0)
        group = [r for r in sorted(self.alive) if self.entrants[r].dataset == entrant.dataset
                 and self.target(r) is not None and self.stage[r] == stage]
        if not group or any(r not in self.values for r in group):
            return Step()
        rung = self.rungs[group[0]][stage]
        replicates: dict[str, list[tuple[int, float]]] = collections.defaultdict(list)
        for r in group:
            replicates[self.entrants[r].model].append((r, self.values.pop(r)))
        step = Step(cuts=judge(self.spec, entrant.dataset, rung, replicates))
        for cut in step.cuts:
            for r in cut.runs:
                if cut.kept:
                    self.stage[r] = stage + 1
                    step.resume.append(r)
                else:
                    self.alive.discard(r)
                    step.stop.append(r)
        return step
