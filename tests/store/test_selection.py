"""Run selection: -id, -request, -param_name_and_value and its thresholds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import mosaic
from mosaic.errors import SelectionError
from mosaic.store.reader import select_runs
from mosaic.store.selection import Selection, format_ids, parse_ids
from mosaic.store.session import open_store
from mosaic.store.writer import Store
from tests.helpers import LEGACY_DB
from tests.helpers.stores import build_store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Runs 1-4: mlp_brick widths 2, 3, 9, 10 (done); run 5: mlp_broken (error)."""
    created = Store(tmp_path / "store", create=True)
    build_store(created, widths=(2, 3, 9, 10))
    return created


@pytest.mark.parametrize(("text", "ids"), [
    ("3", [3]), ("1-3,7,10-12", [1, 2, 3, 7, 10, 11, 12]), (" 1 - 3 , 2 ", [1, 2, 3]), ("4-4", [4]), ("all", None),
    ("ALL", None),
])
def test_parse_ids(text: str, ids: list[int] | None) -> None:
    assert parse_ids(text) == ids


@pytest.mark.parametrize(("text", "message"), [
    ("3-x", "'3-x' is not a run id or range; write ids and ranges like 1-3,7,10-12"),
    ("5-2", "range 5-2 runs backwards; write 2-5"),
    ("0", "run ids start at 1"),
    ("1,,2", "'' is not a run id"),
    ("", "-id is empty"),
    ("-3", "'-3' is not a run id"),
])
def test_malformed_ids_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(SelectionError, match=message.replace("(", r"\(")) as error:
        parse_ids(text)
    assert "\n" not in str(error.value)


def test_format_ids_is_the_inverse() -> None:
    assert format_ids([1, 2, 3, 7, 10, 11, 12]) == "1-3,7,10-12"
    assert format_ids([]) == ""
    assert parse_ids(format_ids([5, 1, 2, 9])) == [1, 2, 5, 9]


def test_ids(store: Store) -> None:
    assert select_runs(store.path, Selection(ids="3,1-2")) == [1, 2, 3]
    assert select_runs(store, Selection(ids="all")) == [1, 2, 3, 4, 5]
    with pytest.raises(SelectionError, match=r"-id 4-8: run ids 6-8 are not in .*store \(it holds 1-5\)"):
        select_runs(store.path, Selection(ids="4-8"))


def test_exactly_one_selection(store: Store) -> None:
    with pytest.raises(SelectionError, match="exactly one"):
        select_runs(store.path, Selection())
    with pytest.raises(SelectionError, match="exactly one"):
        select_runs(store.path, Selection(ids="1", request="SELECT 1"))


def test_request(store: Store) -> None:
    sql = "SELECT run_id FROM params WHERE param_name = 'mlp_brick_width' AND param_value IN (2, 9)"  # range values are integers
    assert select_runs(store.path, Selection(request=sql)) == [1, 3]
    assert select_runs(store.path, Selection(request="SELECT run_id FROM run_results WHERE epochs = 3")) == [1, 2, 3, 4]
    assert select_runs(store.path, Selection(request="SELECT 2 UNION ALL SELECT 2 UNION ALL SELECT 1")) == [1, 2]


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT run_id, param_name FROM params", r"one integer column of run ids; .* returns \(run_id BIGINT, param_name VARCHAR\)"),
    ("SELECT param_value FROM params", "one integer column"),
    ("SELECT run_id FROM params WHERE false", "returned no run id"),
    ("SELECT 99", "run ids 99 are not in"),
    ("DELETE FROM runs_all", "-request: .*read-only"),
    ("SELECT nope FROM runs", "-request .* failed"),
])
def test_request_errors(store: Store, sql: str, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        select_runs(store.path, Selection(request=sql))


def test_param_name_and_value_is_text_equality(store: Store) -> None:
    assert select_runs(store.path, Selection(equal=("mlp_brick_width", "9"))) == [3]
    assert select_runs(store.path, Selection(equal=["mlp_key", "brick_10"])) == [4]
    assert select_runs(store.path, Selection(equal=("status", "error"))) == [5]
    with pytest.raises(SelectionError, match="no run matches -param_name_and_value mlp_brick_width 9.0 .*takes the values: 2, 3, 9, 10"):
        select_runs(store.path, Selection(equal=("mlp_brick_width", "9.0")))


def test_thresholds_are_inclusive_and_compare_numbers_as_numbers(store: Store) -> None:
    # inclusive as the original (low: <=, high: >=); numbers as numbers, so "10" is not below "9"
    assert select_runs(store.path, Selection(below=("mlp_brick_width", "9"))) == [1, 2, 3]
    assert select_runs(store.path, Selection(above=("mlp_brick_width", "9"))) == [3, 4]
    assert select_runs(store.path, Selection(below=("mlp_brick_width", "2"))) == [1]
    assert select_runs(store.path, Selection(above=("mlp_brick_width", "10"))) == [4]
    assert select_runs(store.path, Selection(above=("mlp_brick_width", "2.5"))) == [2, 3, 4]
    assert select_runs(store.path, Selection(below=("lr", "0.1"))) == [1, 2, 3, 4, 5]  # "1e-2" is a number
    assert select_runs(store.path, Selection(below=("lr", "1e-2"))) == [1, 2, 3, 4, 5]  # equal counts
    # text when a side is not a number
    assert select_runs(store.path, Selection(below=("mlp_key", "brick_3"))) == [1, 2, 4]
    assert select_runs(store.path, Selection(below=("mlp_brick_width", "abc"))) == [1, 2, 3, 4]  # digits sort first
    with pytest.raises(SelectionError, match="no run matches"):
        select_runs(store.path, Selection(above=("mlp_brick_width", "100")))


def test_unknown_parameter_lists_close_names(store: Store) -> None:
    with pytest.raises(SelectionError, match="mlp_brick_widht: no parameter of that name .*close names: mlp_brick_width"):
        select_runs(store.path, Selection(equal=("mlp_brick_widht", "3")))
    with pytest.raises(SelectionError, match="takes NAME VALUE"):
        select_runs(store.path, Selection(below=("mlp_brick_width",)))


def test_empty_store(tmp_path: Path) -> None:
    Store(tmp_path / "empty", create=True)
    with pytest.raises(SelectionError, match="no runs"):
        select_runs(tmp_path / "empty", Selection(ids="all"))


def test_open_session_and_legacy_database(store: Store, tmp_path: Path) -> None:
    with open_store(store.path) as session:
        assert select_runs(session, Selection(ids="2")) == [2]
        assert select_runs(session, Selection(equal=("mlp_key", "broken"))) == [5]
    legacy = tmp_path / "legacy.db"
    shutil.copy(LEGACY_DB, legacy)
    assert select_runs(legacy, Selection(equal=("mlp_brick_width", "3"))) == [3, 4]
    assert select_runs(legacy, Selection(above=("mlp_brick_width", "3"))) == [3, 4, 5, 6]
    assert select_runs(legacy, Selection(equal=("status", "error"))) == [7, 8]
    assert mosaic.select_runs is select_runs and mosaic.Selection is Selection
