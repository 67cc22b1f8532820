"""The ``decisions`` table, read back: what a resumed sweep, ``status`` and the report need.

A search strategy writes one row per (pipeline, rung) (:meth:`mosaic.search.halving.Cut.row`);
these functions read them through the store's ``decisions`` view (one row per pipeline and
rung, the latest when a resumed sweep decided a rung again).
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mosaic import schemas
from mosaic.store.session import StoreSession, open_store

#: the decisions view's columns, as the rows these functions hand out
_COLUMNS = ("sweep_id", *(name for name, _ in schemas.table_columns("decisions") if name != "time"))


@contextlib.contextmanager
def _session(source: StoreSession | str | os.PathLike[str]) -> Iterator[StoreSession]:
    """``source`` itself when it is an open session (the caller's snapshot), else one opened here."""
    if isinstance(source, StoreSession):
        yield source
        return
    with open_store(source, live=False) as session:
        yield session


def _rows(session: StoreSession) -> list[dict[str, Any]]:
    return [dict(zip(_COLUMNS, row, strict=True)) for row in session.fetch(f"SELECT {', '.join(_COLUMNS)} FROM decisions")]


def read_decisions(source: StoreSession | str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every decision of a store (or an original database: none), in order; ``source``: a
    store or an open session of one."""
    with _session(source) as session:
        return _rows(session)


def run_ids(row: dict[str, Any]) -> list[int]:
    """The run ids of a decision's pipeline."""
    return [int(part) for part in str(row.get("runs") or "").split(",") if part.strip()]


def decided(rows: Iterable[dict[str, Any]], among: Iterable[int]) -> dict[int, list[tuple[int, bool]]]:
    """Run id -> [(rung, kept)] for the runs ``among``: a resumed sweep's rung state."""
    wanted = set(among)
    out: dict[int, list[tuple[int, bool]]] = collections.defaultdict(list)
    for row in rows:
        for run_id in run_ids(row):
            if run_id in wanted:
                out[run_id].append((int(row["rung"]), bool(row["kept"])))
    return dict(out)


@dataclass(frozen=True)
class Stopped:
    """A pipeline a search stopped: where, and why."""

    dataset: str
    model: str
    rung: int
    runs: tuple[int, ...]
    reason: str


def stopped_pipelines(rows: Iterable[dict[str, Any]]) -> list[Stopped]:
    """The pipelines stopped, in the order they were stopped (rung, then rank)."""
    cut = [r for r in rows if not r["kept"]]
    cut.sort(key=lambda r: (r["sweep_id"] or 0, r["rung"], r["dataset"], r["rank"]))
    return [Stopped(str(r["dataset"]), str(r["model"]), int(r["rung"]), tuple(run_ids(r)), str(r["reason"])) for r in cut]


@dataclass(frozen=True)
class Effort:
    """What a search spared against the full grid: its pipelines judged and stopped, and epochs.

    ``stopped``: rung -> pipelines stopped there; ``planned``: the epochs of every run of the
    full grid; ``trained``: the epochs trained; ``saved``: the planned epochs of the stopped
    runs that they did not train (a run that failed or ended early saves nothing here).
    """

    pipelines: int
    stopped: dict[int, int]
    planned: int
    trained: int
    saved: int

    @property
    def saved_percent(self) -> float:
        """``saved`` in % of ``planned`` (0 when nothing was planned)."""
        return 100.0 * self.saved / self.planned if self.planned else 0.0

    def at_rungs(self) -> str:
        """``4 at epoch 1, 1 at epoch 3`` (or ``none``)."""
        return ", ".join(f"{count} at epoch {rung}" for rung, count in sorted(self.stopped.items())) or "none"


def effort(rows: Iterable[dict[str, Any]], planned: dict[int, int], trained: dict[int, int]) -> Effort:
    """The :class:`Effort` of the decisions ``rows``, with every run's ``planned`` epochs and the
    epochs each ``trained`` (run id -> epochs; a run missing from ``trained`` trained none)."""
    rows = list(rows)
    stopped = stopped_pipelines(rows)
    per_rung: dict[int, int] = collections.Counter(s.rung for s in stopped)
    saved = sum(max(0, planned.get(run, 0) - trained.get(run, 0)) for s in stopped for run in s.runs)
    return Effort(len({(r["dataset"], r["model"]) for r in rows}), dict(per_rung), sum(planned.values()),
                  sum(trained.values()), saved)


def read_effort(source: StoreSession | str | os.PathLike[str]) -> tuple[list[dict[str, Any]], Effort] | None:
    """A store's decisions and their :class:`Effort` (every run's ``planned_epochs``, its history
    rows), read in one snapshot (``source``: a store, or the caller's open session of one);
    None when the store has no decisions (a full grid)."""
    with _session(source) as session:
        rows = _rows(session)
        if not rows:
            return None
        planned = {int(r): int(n or 0) for r, n in session.fetch("SELECT run_id, planned_epochs FROM runs")}
        trained = {int(r): int(n) for r, n in session.fetch("SELECT run_id, count(*) FROM history GROUP BY run_id")}
    return rows, effort(rows, planned, trained)
