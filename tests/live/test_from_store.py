"""A board filled from a store through DuckDB (mosaic.live.from_store): the same numbers as the
live board, the report's names, mosaic verdict's input; every store state."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import mosaic
from mosaic.live import views
from mosaic.live.curves import slot
from mosaic.live.from_store import load_board, run_curve
from mosaic.live.judge import judge
from mosaic.store.session import open_store
from mosaic.store.status import RunStatus
from tests.helpers.stores import STORE_STATES, TWELVE, analysis_store, store_in_state


def test_a_store_board_counts_names_and_curves_like_the_views(tmp_path: Path) -> None:
    store = analysis_store(tmp_path / "store", TWELVE, epochs=5)
    with open_store(store) as session:
        board = load_board(session, str(store))
        statuses = dict(session.sql("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        means = dict(session.sql(
            "SELECT p.param_value || '/' || h.epoch, avg(h.test_loss) FROM history h JOIN params_text p USING (run_id) "
            "WHERE p.param_name = 'mlp_key' GROUP BY ALL").fetchall())
        assert [r["loss"] for r in run_curve(session, 1) if r["split"] == "test"] == \
            [views.number(v) for (v,) in session.sql("SELECT test_loss FROM history WHERE run_id = 1 ORDER BY epoch").fetchall()]
    assert {str(s): board.count(RunStatus(s)) for s in statuses} == statuses and len(board.runs) == 12
    assert [(g.dataset, g.model, g.planned, g.count(RunStatus.DONE)) for g in board.groups] == [
        ("dataset_OR", "mlp_funnel", 6, 6), ("dataset_OR", "mlp_brick", 6, 5)]
    for group in board.groups:
        assert group.curve is not None
        for epoch, n, _, _, test, _ in group.curve.points():
            assert slot(epoch, 5) is not None and n == group.count(RunStatus.DONE)  # the failed run has no history
            assert math.isclose(test, means[f"{group.model}/{epoch}"], rel_tol=1e-6)
    # the verdict so far of a finished store is mosaic verdict's, row for row
    expected = mosaic.verdict(store).table.sort_values(["rank", "model"])
    (shown,) = judge(list(board.finals()))["datasets"]  # type: ignore[index]
    assert [(r["model"], r["n"], r["verdict"]) for r in shown["rows"]] == list(
        zip(expected["model"], expected["n"], expected["verdict"], strict=True))
    assert board.failures and board.runs[12].error == "Traceback: boom"


@pytest.mark.parametrize("state", STORE_STATES)
def test_every_store_state_gives_a_page(state: str, tmp_path: Path) -> None:
    with store_in_state(state, tmp_path / "store") as path, open_store(path) as session:
        board = load_board(session, str(path))
        body = views.summary(board, 0.0)
        json.dumps(body, allow_nan=False)
        assert sum(body["header"]["counts"].values()) == len(board.runs)
        if state != "empty":
            assert board.runs and board.groups and body["groups"]["rows"]
            sweeps = dict(session.sql("SELECT run_id, sweep_id FROM runs").fetchall())  # each run's own sweep
            assert all(r["sweep"] == sweeps[r["run"]] for r in views.runs_page(board, limit=views.MAX_PAGE)["runs"])
        if state == "imported":  # an original database, imported: named by its first and last section types
            assert all(r["dataset"] and r["model"] for r in body["groups"]["rows"])
