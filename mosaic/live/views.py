"""What the page asks a :class:`~mosaic.live.board.Board` for, as bounded JSON-ready dicts.

:func:`summary` is the live view (header, the dataset x model table, the curves, failures):
its size depends on the limits below, never on the number of runs, and it is built from the
board's running totals (a pass over the groups, none over the runs). :func:`runs_page` is the
drill-down's page of runs (filtered, sorted, at most :data:`MAX_PAGE` rows);
:func:`run_row` one run as a row.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Callable, Iterable
from typing import Any

from mosaic.live.board import FINAL, METRIC, UNKNOWN, VALUES, Board, Group, RunState
from mosaic.store.status import ORDER, RunStatus

#: rows of the dataset x model table sent at most (sorted on the server: the best first by default)
MAX_GROUPS = 100
#: datasets drawn at most, and models per dataset (the best by their mean metric so far)
CURVE_DATASETS = 4
CURVE_MODELS = 6
#: failures listed at most (the latest first); the drill-down lists them all, a page at a time
MAX_FAILURES = 20
#: runs on one page of the drill-down at most
MAX_PAGE = 500
#: the sort keys of the table of models
GROUP_SORTS = ("dataset", "model", "planned", "done", "running", "failed", "stopped", "progress", "best", "mean")
#: the sort keys of the runs table
RUN_SORTS = ("run", "dataset", "model", "state", "epoch", "train_loss", "test_loss", "train_acc", "test_acc",
             "best", "worker", "updated")


def number(value: float | None, digits: int = 5) -> float | None:
    """``value`` rounded to ``digits`` significant digits; None for a missing or non-finite one."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def summary(board: Board, now: float, *, sort: str = "mean", desc: bool = False, dataset: str | None = None,
            logs: bool = False) -> dict[str, Any]:
    """The live view of ``board`` at time ``now`` (seconds since the epoch). ``sort``/``desc``:
    the table's order (one of :data:`GROUP_SORTS`); ``dataset``: the one dataset to draw (else
    the first :data:`CURVE_DATASETS`); ``logs``: whether failures link to their logs."""
    return {
        "metric": METRIC,
        "header": header(board, now),
        "groups": groups_table(board, sort, desc),
        "curves": curves(board, dataset),
        "failures": failures(board, logs),
        "decisions": {"total": board.decisions_total, "rows": board.decisions} if board.decisions_total else None,
    }


def header(board: Board, now: float) -> dict[str, Any]:
    """Sweep, config, started, elapsed, ETA, and the runs counted by status."""
    end = board.ended if board.ended is not None else (board.updated if board.finished else now)
    elapsed = max(0.0, end - board.started) if board.started else None
    eta = None
    if not board.finished and board.ended is None and board.epochs_trained and board.first_epoch_at:
        rate = board.epochs_trained / max(1e-9, now - board.first_epoch_at)
        eta = board.epochs_left / rate if rate > 0 else None
    counts = {status: board.count(RunStatus(status)) for status in ORDER}
    return {
        "sweep": board.sweep_id, "kind": board.kind, "config": board.config, "store": board.store,
        "sweeps": board.sweeps, "started": board.started, "elapsed": number(elapsed, 6), "eta": number(eta, 4),
        "finished": board.finished or board.ended is not None, "runs": len(board.runs), "counts": counts,
        "epochs_trained": board.epochs_trained, "epochs_left": board.epochs_left,
    }


def group_row(group: Group) -> dict[str, Any]:
    """One (dataset, model) as a row of the table."""
    failed = group.count(RunStatus.ERROR) + group.count(RunStatus.SYSTEM_FAILURE)
    return {
        "dataset": group.dataset, "model": group.model, "planned": group.planned,
        "done": group.count(RunStatus.DONE), "running": group.count(RunStatus.RUNNING), "failed": failed,
        "stopped": group.count(RunStatus.STOPPED), "epochs_done": group.epochs_done,
        "epochs_planned": group.epochs_planned, "progress": _progress(group),
        "best": number(group.best), "mean": number(group.mean),
    }


def _progress(group: Group) -> float | None:
    return number(min(1.0, group.epochs_done / group.epochs_planned), 3) if group.epochs_planned > 0 else None


def _group_key(sort: str) -> Callable[[Group], Any]:
    if sort in ("dataset", "model"):
        return lambda g: getattr(g, sort)
    if sort == "progress":
        return _progress
    if sort in ("best", "mean", "planned"):
        return lambda g: getattr(g, sort)
    status = {"done": (RunStatus.DONE,), "running": (RunStatus.RUNNING,), "stopped": (RunStatus.STOPPED,),
              "failed": (RunStatus.ERROR, RunStatus.SYSTEM_FAILURE)}[sort]
    return lambda g: sum(g.count(s) for s in status)


def ordered(items: Iterable[Any], key: Callable[[Any], Any], desc: bool, first: int | None = None) -> list[Any]:
    """``items`` sorted by ``key``, missing values (None) last in either direction; only the
    ``first`` ones when given (a partial sort: a page of 100,000 runs sorts in one pass)."""
    keyed = [(key(item), item) for item in items]
    present = [pair for pair in keyed if pair[0] is not None]
    missing = [item for value, item in keyed if value is None]
    by_value = operator.itemgetter(0)
    if first is not None and first < len(present):
        top = (heapq.nlargest if desc else heapq.nsmallest)(first, present, key=by_value)
        return [item for _, item in top]
    present.sort(key=by_value, reverse=desc)
    return ([item for _, item in present] + missing)[:first]


def groups_table(board: Board, sort: str = "mean", desc: bool = False) -> dict[str, Any]:
    """The dataset x model table, sorted, at most :data:`MAX_GROUPS` rows."""
    sort = sort if sort in GROUP_SORTS else "mean"
    shown = [g for g in board.groups if g.planned]
    rows = ordered(shown, _group_key(sort), desc)[:MAX_GROUPS]
    return {"total": len(shown), "sort": sort, "desc": desc, "rows": [group_row(g) for g in rows]}


def curves(board: Board, dataset: str | None = None) -> dict[str, Any]:
    """Mean curves with a band of one standard deviation over replicates, train and test loss,
    of the best :data:`CURVE_MODELS` models of each dataset drawn."""
    datasets = list(dict.fromkeys(g.dataset for g in board.groups if g.planned))
    shown = [dataset] if dataset in datasets else datasets[:CURVE_DATASETS]
    rows: list[dict[str, Any]] = []
    models: dict[str, int] = {}
    for name in shown:
        candidates = [g for g in board.groups if g.dataset == name and g.curve is not None]
        models[name] = len(candidates)
        for group in ordered(candidates, lambda g: g.mean, desc=False)[:CURVE_MODELS]:
            assert group.curve is not None
            for epoch, n, train, train_sd, test, test_sd in group.curve.points():
                for split, mean, sd in (("train", train, train_sd), ("test", test, test_sd)):
                    rows.append({"dataset": name, "model": group.model, "epoch": epoch, "split": split, "n": n,
                                 "mean": number(mean), "low": number(mean - sd), "high": number(mean + sd)})
    return {"datasets": shown, "all_datasets": datasets[:200], "dataset_count": len(datasets),
            "models": models, "models_drawn": CURVE_MODELS, "rows": rows}


def run_row(board: Board, run: RunState) -> dict[str, Any]:
    """One run as a row of the drill-down (and of ``/mosaic.json``)."""
    group = board.groups[run.group]
    row: dict[str, Any] = {
        "run": run.run_id, "sweep": run.sweep if run.sweep is not None else board.sweep_id, "dataset": group.dataset,
        "model": group.model,
        "state": str(run.state), "attempt": run.attempt, "epoch": run.epoch, "epochs": run.epochs or None,
    }
    for name in ("train_loss", "test_loss", "train_acc", "test_acc", "seconds"):
        row[name] = number(run.value(name))
    row.update({"best": number(run.best), "worker": run.worker or None, "error": run.error,
                "updated": number(run.updated, 13) if run.updated else None})
    return row


def failures(board: Board, logs: bool = False) -> dict[str, Any]:
    """The latest failures: run, dataset, model, worker, the traceback's last line, its log."""
    rows: list[dict[str, Any]] = []
    for run in board.failed():
        if len(rows) == MAX_FAILURES:
            break
        row = run_row(board, run)
        rows.append({key: row[key] for key in ("run", "dataset", "model", "state", "worker", "error", "epoch")}
                    | {"log": f"mosaic/log?run={run.run_id}" if logs else None})
    return {"total": len(board.failures), "rows": rows}


def _run_key(sort: str, board: Board) -> Callable[[RunState], Any]:
    if sort == "run":
        return lambda r: r.run_id
    if sort in ("dataset", "model"):
        return lambda r: getattr(board.groups[r.group], sort)
    if sort == "state":
        return lambda r: str(r.state)
    if sort in ("epoch", "best", "updated"):
        return lambda r: getattr(r, sort)
    if sort == "worker":
        return lambda r: r.worker or None
    index = VALUES.index(sort)
    return lambda r: None if r.values is None or math.isnan(value := r.values[index]) else value


def _matches(board: Board, state: str, text: str) -> Callable[[RunState], bool]:
    wanted: frozenset[RunStatus] | None = None
    if state == "failed":
        wanted = frozenset({RunStatus.ERROR, RunStatus.SYSTEM_FAILURE})
    elif state == "active":
        wanted = frozenset(s for s in RunStatus if s not in FINAL)
    elif state in {s.value for s in RunStatus}:
        wanted = frozenset({RunStatus(state)})
    needle = text.strip().lower()
    groups = [f"{g.dataset}\n{g.model}".lower() for g in board.groups]

    def keep(run: RunState) -> bool:
        if wanted is not None and run.state not in wanted:
            return False
        if not needle:
            return True
        return (needle == str(run.run_id) or needle in groups[run.group] or needle in run.worker.lower()
                or (run.error is not None and needle in run.error.lower()))

    return keep


def runs_page(board: Board, *, offset: int = 0, limit: int = 100, sort: str = "run", desc: bool = False,
              state: str = "", text: str = "", dataset: str = "", model: str = "") -> dict[str, Any]:
    """One page of runs: those with ``state`` (a status, ``failed``, ``active`` or all) whose
    dataset, model, worker, error or id matches ``text`` (and exactly ``dataset``/``model``
    when given), sorted by ``sort`` (one of :data:`RUN_SORTS`)."""
    limit = max(1, min(MAX_PAGE, limit))
    offset = max(0, offset)
    sort = sort if sort in RUN_SORTS else "run"
    keep = _matches(board, state, text)
    runs: Iterable[RunState] = board.runs.values()
    if dataset or model:
        wanted = {g.index for g in board.groups if (not dataset or g.dataset == dataset) and (not model or g.model == model)}
        runs = (r for r in runs if r.group in wanted)
    chosen = [r for r in runs if keep(r)]
    total = len(chosen)
    if sort != "run" or desc:
        chosen = ordered(chosen, _run_key(sort, board), desc, first=offset + limit)
    rows = [run_row(board, r) for r in chosen[offset:offset + limit]]
    return {"sweep": board.sweep_id, "total": total, "offset": offset, "limit": limit, "sort": sort,
            "desc": desc, "state": state, "text": text, "runs": rows, "unknown": UNKNOWN}
