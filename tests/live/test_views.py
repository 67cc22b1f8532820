"""What the page asks a board for (mosaic.live.views): bounded whatever the runs, and right."""

from __future__ import annotations

import json

from mosaic.live import views
from tests.helpers.live import board_of, planned, trained


def test_the_summary_is_bounded_whatever_the_runs() -> None:
    board = trained(board_of(planned(8, 300, 3)), range(1, 7201), fail_every=50)
    body = views.summary(board, 30.0)
    assert len(body["groups"]["rows"]) == views.MAX_GROUPS and body["groups"]["total"] == 2400
    assert body["curves"]["datasets"] == ["d0", "d1", "d2", "d3"] and body["curves"]["dataset_count"] == 8
    assert {r["model"] for r in body["curves"]["rows"] if r["dataset"] == "d0"} <= {f"m{m}" for m in range(300)}
    assert len({(r["dataset"], r["model"]) for r in body["curves"]["rows"]}) == 4 * views.CURVE_MODELS
    assert len(body["failures"]["rows"]) == views.MAX_FAILURES and body["failures"]["total"] == 144
    assert len(json.dumps(body)) < 200_000
    # one dataset asked for: only it is drawn
    assert views.summary(board, 30.0, dataset="d7")["curves"]["datasets"] == ["d7"]


def test_the_table_sorts_on_the_server_missing_values_last() -> None:
    board = trained(board_of(planned(1, 5, 2)), range(1, 7))  # models m0-m2 trained, m3 and m4 not
    rows = views.groups_table(board, "best")["rows"]
    assert [r["model"] for r in rows][-2:] == ["m3", "m4"] and rows[0]["best"] <= rows[1]["best"] <= rows[2]["best"]
    assert [r["model"] for r in views.groups_table(board, "best", desc=True)["rows"]][-2:] == ["m3", "m4"]
    assert [r["done"] for r in views.groups_table(board, "done", desc=True)["rows"]] == [2, 2, 2, 0, 0]
    assert views.groups_table(board, "no-such-column")["sort"] == "mean"


def test_a_page_of_runs_filters_sorts_and_pages() -> None:
    board = trained(board_of(planned(2, 10, 5)), range(1, 81), fail_every=7)
    page = views.runs_page(board, state="failed", limit=5)
    assert page["total"] == 11 and [r["run"] for r in page["runs"]] == [7, 14, 21, 28, 35]
    assert all(r["state"] == "error" and r["error"] == "RuntimeError: boom" for r in page["runs"])
    every = views.runs_page(board, sort="test_loss", limit=500)["runs"]
    by_loss = sorted((r for r in board.runs.values()), key=lambda r: (r.value("test_loss") is None, r.value("test_loss") or 0))
    assert [r["test_loss"] for r in every] == [views.number(r.value("test_loss")) for r in by_loss]
    second = views.runs_page(board, sort="test_loss", desc=True, offset=10, limit=10)["runs"]
    assert [r["run"] for r in second] == [r["run"] for r in views.runs_page(board, sort="test_loss", desc=True, limit=20)["runs"][10:]]
    assert views.runs_page(board, text="d1", limit=500)["total"] == 50
    assert views.runs_page(board, dataset="d0", model="m3")["total"] == 5
    assert views.runs_page(board, state="pending")["total"] == 20 and views.runs_page(board, limit=10**6)["limit"] == views.MAX_PAGE
    assert views.runs_page(board, text="17")["runs"][0]["run"] == 17
    row = views.runs_page(board, limit=1)["runs"][0]
    assert {"run", "sweep", "dataset", "model", "state", "epoch", "epochs", "train_loss", "test_loss", "worker"} <= set(row)


def test_the_header_counts_elapsed_and_eta() -> None:
    board = board_of(planned(1, 1, 4, epochs=10))  # started at 100
    board.on_start(1, "h:1", 100.0)
    board.on_epoch(1, 0, 1, 10, {"train_loss": 1.0, "test_loss": 1.0}, 110.0)  # first epoch at 110
    for epoch in range(2, 6):
        board.on_epoch(1, 0, epoch, 10, {"train_loss": 1.0, "test_loss": 1.0}, 110.0)
    head = views.header(board, 120.0)
    # 5 epochs in 10 s since the first epoch; 35 left
    assert (head["elapsed"], head["eta"], head["finished"]) == (20.0, 70.0, False)
    assert head["counts"]["running"] == 1 and head["counts"]["pending"] == 3 and head["runs"] == 4
    board.close(130.0)
    assert views.header(board, 500.0)["elapsed"] == 30.0 and views.header(board, 500.0)["eta"] is None
