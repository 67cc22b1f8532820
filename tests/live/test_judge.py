"""The verdict so far (mosaic.live.judge): mosaic verdict's statistics over the done runs, never
on the request path, bounded."""

from __future__ import annotations

import time

import pandas as pd

from mosaic.analysis.verdict import verdict_table
from mosaic.live.judge import TOP, Judge, judge
from tests.helpers.live import board_of, planned, trained

WAIT_S = 60.0


def _wait(judge_: Judge, board: object, as_of: int) -> dict:
    deadline = time.monotonic() + WAIT_S
    while (result := judge_.get(board)) is None or result.get("as_of") != as_of:  # type: ignore[arg-type]
        assert time.monotonic() < deadline, "the verdict never came"
        time.sleep(0.05)
    return result


def test_the_verdict_so_far_is_mosaic_verdicts_on_the_done_runs() -> None:
    board = trained(board_of(planned(2, 14, 4)), range(1, 113), fail_every=9)
    finals = list(board.finals())
    result = judge(finals)
    assert result is not None and result["as_of"] == len(finals) == 112 - 12
    table = verdict_table(pd.DataFrame(finals, columns=["dataset", "model", "value"]), "test_loss", False)
    for shown in result["datasets"]:
        expected = table[table["dataset"] == shown["dataset"]].sort_values(["rank", "model"]).head(TOP)
        assert [r["model"] for r in shown["rows"]] == expected["model"].tolist()
        assert [r["verdict"] for r in shown["rows"]] == expected["verdict"].tolist()
        assert shown["models"] == 14 and len(shown["rows"]) == TOP
    assert result["across"] is not None and judge([]) is None


def test_the_judge_answers_at_once_and_computes_in_the_background() -> None:
    board = trained(board_of(planned(1, 3, 3)), range(1, 7))
    judge_ = Judge(min_interval=0.0)
    assert judge_.get(board) is None  # started, not waited for
    first = _wait(judge_, board, 6)
    assert first["datasets"][0]["models"] == 2
    trained(board, range(7, 10))
    assert _wait(judge_, board, 9)["datasets"][0]["models"] == 3
    slow = Judge(min_interval=3600.0)
    _wait(slow, board, 9)
    trained(board, range(7, 8), fail_every=1)  # run 7 fails on a second try: too soon for a new verdict
    assert slow.get(board)["as_of"] == 9  # type: ignore[index]
