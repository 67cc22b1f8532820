"""A :class:`~mosaic.live.board.Board` filled from a store (or an original ``.db``) through DuckDB:
what ``mosaic ui`` shows, the same page as the live one.

The aggregation that the scheduler does event by event is done here in SQL, once per
refresh of the store: each run's latest row, last epoch and best metric, each model's curve
at the same points as the live page's (:mod:`mosaic.live.curves`), the verdict's input
(``run_results``, exactly as ``mosaic verdict`` reads it), the sweeps and the search
decisions. Datasets and models follow :func:`mosaic.sweep.dataset_and_model` through
:func:`mosaic.analysis.plots.run_keys`, as the report and the verdict do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from mosaic.live import curves
from mosaic.live.board import UNKNOWN, Board
from mosaic.store.layout import Layout
from mosaic.store.session import StoreSession
from mosaic.store.status import RunStatus
from mosaic.text import last_line

#: the most decision rows a board keeps (the latest)
MAX_DECISIONS = 50
_LABELS = "mosaic_live_labels"


def load_board(session: StoreSession, label: str) -> Board:
    """The board of every run of the store ``session`` reads (one listing of its files)."""
    return session.retry(lambda: _load(session, label))


def fingerprint(session: StoreSession) -> tuple[Any, ...]:
    """Row counts of the store's raw tables: a new row anywhere changes it (Parquet footers only)."""
    tables = ("runs", "history", "results", "sweeps", "decisions", "params")
    counts = ", ".join(f"(SELECT count(*) FROM {t}_all)" for t in tables)
    return tuple(session.fetch(f"SELECT {counts}")[0])


def _load(session: StoreSession, label: str) -> Board:
    board = Board(store=label)
    _header(session, board)
    runs = session.arrow("SELECT run_id, status, pipeline, pipeline_json, worker, error, planned_epochs, attempt, "
                         "epoch(time) AS updated, sweep_id FROM runs ORDER BY run_id").to_pandas()
    if runs.empty:
        return board
    groups = _groups(session, board, runs)
    last = {row[0]: row[1:] for row in session.fetch(
        "SELECT run_id, max(epoch), arg_max(train_loss, epoch), arg_max(test_loss, epoch), arg_max(train_acc, epoch), "
        "arg_max(test_acc, epoch), arg_max(seconds, epoch), min(test_loss) FROM history GROUP BY run_id")}
    finals = dict(session.fetch("SELECT run_id, test_loss FROM run_results"))
    totals: dict[int, int] = {}
    for run_id, status, group, planned, worker, error, attempt, updated, sweep in zip(
            runs["run_id"].tolist(), runs["status"].tolist(), groups, runs["planned_epochs"].tolist(),
            runs["worker"].tolist(), runs["error"].tolist(), runs["attempt"].tolist(), runs["updated"].tolist(),
            runs["sweep_id"].tolist(), strict=True):
        epoch, *values, best = last.get(run_id, (0, None, None, None, None, None, None))
        epochs = _whole(planned) or int(epoch or 0)
        state = _status(status)
        failed = state in (RunStatus.ERROR, RunStatus.SYSTEM_FAILURE)
        board.load_run(int(run_id), group, state, epochs, epoch=int(epoch or 0), attempt=_whole(attempt), values=values,
                       best=best, final=finals.get(run_id), worker=str(worker or ""),
                       error=last_line(str(error))[:500] if failed and error else None, updated=float(updated or 0.0),
                       sweep=_whole(sweep) or None)
        totals[group] = max(totals.get(group, 0), epochs)
    _curves(session, board, runs["run_id"].tolist(), groups, totals)
    _decisions(session, board)
    board.updated = float(runs["updated"].max() or 0.0)
    board.version += 1
    return board


def _whole(value: Any) -> int:
    return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _status(text: Any) -> RunStatus:
    try:
        return RunStatus(str(text))
    except ValueError:
        return RunStatus.PENDING


def _header(session: StoreSession, board: Board) -> None:
    row = session.fetch(
        "SELECT count(*), epoch(min(started)), epoch(max(ended)), bool_or(ended IS NULL), arg_max(kind, sweep_id), "
        "arg_max(config_path, sweep_id), max(sweep_id) FROM sweeps")[0]
    count, started, ended, open_, kind, config, latest = row
    board.sweeps, board.started, board.kind, board.config, board.sweep_id = int(count), started, kind or "", config or "", latest
    board.ended = None if open_ else ended
    if open_:  # a sweep still writing: the ETA's rate from its epochs so far
        trained = session.fetch("SELECT count(*), epoch(min(time)) FROM history_all WHERE sweep_id IN "
                                "(SELECT sweep_id FROM sweeps WHERE ended IS NULL)")[0]
        board.epochs_trained, board.first_epoch_at = int(trained[0]), trained[1]


def _groups(session: StoreSession, board: Board, runs: Any) -> list[int]:
    """Each run's group on ``board``, by the one rule (the keys ``rekey`` rewrote included)."""
    from mosaic.analysis.frames import naming_params
    from mosaic.analysis.plots import run_keys

    params = naming_params(session, with_pipeline=bool(runs["pipeline_json"].isna().any()))
    keys = run_keys(runs[["run_id", "status", "pipeline", "pipeline_json"]], params)
    return [board.group(dataset or UNKNOWN, model or UNKNOWN).index for dataset, model in
            zip(keys["dataset_key"].tolist(), keys["model_key"].tolist(), strict=True)]


def _curves(session: StoreSession, board: Board, run_ids: Sequence[int], groups: Sequence[int],
            totals: dict[int, int]) -> None:
    """Each group's mean curve and band, at the points of its planned epochs."""
    steps = {g: curves.stride(e) for g, e in totals.items() if e > 0}
    if not steps:
        return
    labels = pa.table({"run_id": pa.array(run_ids, pa.int64()), "grp": pa.array(groups, pa.int64()),
                       "total": pa.array([totals[g] for g in groups], pa.int64()),
                       "step": pa.array([steps.get(g, 1) for g in groups], pa.int64())})
    session.con.register(_LABELS, labels)
    try:
        rows = session.fetch(
            f"SELECT grp, (epoch - 1) // step AS slot, count(*), avg(train_loss), var_pop(train_loss), avg(test_loss), "
            f"var_pop(test_loss) FROM history JOIN {_LABELS} USING (run_id) "
            "WHERE epoch BETWEEN 1 AND total AND (total - epoch) % step = 0 AND isfinite(train_loss) AND isfinite(test_loss) "
            "GROUP BY ALL")
    finally:
        session.con.unregister(_LABELS)
    for group, slot, n, train, train_var, test, test_var in rows:
        target = board.groups[group]
        if target.curve is None:
            target.curve = curves.BandCurve(totals[group])
        target.curve.load(int(slot), int(n), train, train_var or 0.0, test, test_var or 0.0)


def _decisions(session: StoreSession, board: Board) -> None:
    board.decisions_total = int(session.fetch("SELECT count(*) FROM decisions")[0][0])
    if board.decisions_total:
        columns = ["sweep_id", "dataset", "model", "rung", "metric", "value", "cutoff", "kept", "rank", "pipelines", "reason"]
        rows = session.fetch(f"SELECT {', '.join(columns)} FROM decisions ORDER BY time DESC, rung DESC, rank "
                             f"LIMIT {MAX_DECISIONS}")
        board.decisions = [{c: (_number(v) if isinstance(v, float) else v) for c, v in zip(columns, row, strict=True)}
                           for row in rows]


def _number(value: float) -> float | None:
    return float(f"{value:.5g}") if math.isfinite(value) else None


def run_curve(session: StoreSession, run_id: int, points: int = 2000) -> list[dict[str, Any]]:
    """One run's every epoch (every k-th beyond ``points`` epochs), as the page's rows."""
    (count,) = session.fetch("SELECT count(*) FROM history WHERE run_id = ?", [run_id])[0]
    step = max(1, -(-int(count) // points))
    rows = session.fetch("SELECT epoch, train_loss, test_loss FROM history WHERE run_id = ? "
                         "AND (epoch % ? = 0 OR epoch = 1) ORDER BY epoch", [run_id, step])
    return [{"epoch": epoch, "split": split, "loss": _number(value)} for epoch, train, test in rows
            for split, value in (("train", train), ("test", test)) if value is not None and math.isfinite(value)]


def run_files_folders(session: StoreSession, store: Path) -> list[Path]:
    """Where a store's run files may be: each sweep's ``run_files_path`` (relative to its
    config's folder, or to a database's folder), then the store's default folder."""
    found: list[Path] = []
    rows = session.fetch(
        "SELECT DISTINCT p.param_value, s.config_path FROM params_text p LEFT JOIN runs r USING (run_id) "
        "LEFT JOIN sweeps s ON s.sweep_id = r.sweep_id WHERE p.param_name = 'run_files_path'")
    for raw, config in rows:
        if not raw or "://" in str(raw):
            continue
        path = Path(str(raw)).expanduser()
        base = Path(config).parent if config else (store.parent if store.is_file() else store)
        found.append(path if path.is_absolute() else base / path)
    if store.is_dir():
        found.append(Layout(store).default_run_files)
    return [p for p in dict.fromkeys(found) if p.is_dir()]
