"""DuckDB sessions over a store (mosaic.store.session): the legacy views and their columns,
latest-row semantics, the contract every store state honours, the read-only session, and
params.param_value compared like the original's untyped sqlite column.

The original stored range values as INTEGER and everything else as TEXT; sqlite orders
numbers before text and never equates 3 with '3'. The same old queries must answer the same
rows on a store imported from an original database, on that database read directly, and on
the sqlite file itself.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mosaic.analysis.legacy import export, import_db
from mosaic.errors import SelectionError, StoreError
from mosaic.store.reader import open_reader, select_runs
from mosaic.store.records import history_rows
from mosaic.store.selection import Selection
from mosaic.store.session import open_store
from mosaic.store.writer import Store, now
from tests.helpers import LEGACY_DB, LEGACY_RUNS
from tests.helpers.stores import (
    RUN_RESULTS_COLUMNS,
    STORE_STATES,
    TRACEBACK,
    VIEW_COLUMNS,
    SweepWriter,
    build_store,
    pipeline,
    rerun,
    store_in_state,
    writing_thread,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A finished sweep: runs 1-4 done (mlp_brick widths 2, 3, 4, 10), run 5 failed."""
    created = Store(tmp_path / "store", create=True)
    build_store(created)
    return created


def rows(session, sql: str) -> list[tuple]:
    return session.sql(sql).fetchall()


# -- views -------------------------------------------------------------------------------
def test_empty_store_has_every_view_with_its_columns(tmp_path: Path) -> None:
    Store(tmp_path / "empty", create=True)
    with open_store(tmp_path / "empty") as session:
        for view, columns in VIEW_COLUMNS.items():
            relation = session.sql(f"SELECT * FROM {view}")
            assert relation.columns == columns, view
            expected = [("next_run_id", 1)] if view == "system" else []
            assert relation.fetchall() == expected, view


def test_legacy_sql_runs_unchanged(store: Store) -> None:
    with open_store(store.path) as session:
        # range values are integers, as in the original's sqlite file: = 3 matches, = '3' does not
        assert rows(session, "SELECT run_id FROM params WHERE param_name='mlp_brick_width' AND param_value=3") == [(2,)]
        assert rows(session, "SELECT run_id FROM params WHERE param_name='mlp_brick_width' AND param_value='3'") == []
        assert rows(session, "SELECT param_value FROM params WHERE param_name='mlp_brick_width' ORDER BY run_id") == [
            ("2",), ("3",), ("4",), ("10",)]  # results read as text, as before
        durations = rows(session, 'SELECT "duration(s)" FROM run_results ORDER BY run_id')
        assert durations == [(0.51,), (0.52,), (0.53,), (0.54,)]
        assert rows(session, "SELECT param_value FROM system WHERE param_name = 'next_run_id'") == [(6,)]
        assert rows(session, "SELECT run_id, status FROM runs ORDER BY run_id") == [
            (1, "done"), (2, "done"), (3, "done"), (4, "done"), (5, "error")]
        joined = rows(session, """
            SELECT p.param_value, max(h.epoch), min(h.train_loss) FROM history h
            JOIN params p ON p.run_id = h.run_id AND p.param_name = 'mlp_key'
            JOIN run_results r ON r.run_id = h.run_id
            GROUP BY 1 ORDER BY 1""")
        assert [(k, n) for k, n, _ in joined] == [("brick_10", 3), ("brick_2", 3), ("brick_3", 3), ("brick_4", 3)]


def test_view_columns_keep_the_legacy_order(store: Store) -> None:
    with open_store(store.path) as session:
        for view, columns in VIEW_COLUMNS.items():
            assert session.sql(f"SELECT * FROM {view}").columns == columns, view


def test_params_hold_legacy_names_plus_status_and_traceback(store: Store) -> None:
    with open_store(store.path) as session:
        names = {n for (n,) in rows(session, "SELECT param_name FROM params WHERE run_id = 1")}
        assert {"pipeline", "dataset_OR_batch_size", "dataset_key", "mlp_brick_width", "mlp_key", "lr",
                "database_path", "status", "traceback"} <= names
        assert rows(session, "SELECT param_value FROM params WHERE run_id = 1 AND param_name = 'traceback'") == [("",)]
        assert rows(session, "SELECT param_value FROM params WHERE run_id = 5 AND param_name = 'traceback'") == [(TRACEBACK,)]
        assert rows(session, "SELECT param_value FROM params WHERE run_id = 5 AND param_name = 'status'") == [("error",)]
        assert session.sql("SELECT * FROM params").types == ["BIGINT", "VARCHAR", "VARCHAR"]


def test_latest_row_wins_for_status_params_and_reruns(store: Store) -> None:
    writer = SweepWriter(store)
    ids = writer.plan([pipeline("mlp_brick", 7)])
    with open_store(store.path) as session:  # a live session sees later appends
        assert rows(session, f"SELECT status FROM runs WHERE run_id = {ids[0]}") == [("pending",)]
        assert rows(session, f"SELECT count(*) FROM params WHERE run_id = {ids[0]} AND param_name = 'traceback'") == [(0,)]
        writer.start(ids[0])
        assert rows(session, f"SELECT status FROM runs WHERE run_id = {ids[0]}") == [("running",)]
        writer.finish(ids[0])
        assert rows(session, f"SELECT status, attempt FROM runs WHERE run_id = {ids[0]}") == [("done", 0)]
        store.append("params", [{"run_id": 1, "param_name": "mlp_key", "param_value": "renamed"}], writer.sweep_id)
        assert rows(session, "SELECT param_value FROM params WHERE run_id = 1 AND param_name = 'mlp_key'") == [("renamed",)]
        rerun(store, [1, 2], epochs=5)
        assert rows(session, "SELECT run_id, attempt, epochs FROM run_results WHERE run_id <= 2 ORDER BY 1") == [
            (1, 1, 5), (2, 1, 5)]
        assert rows(session, "SELECT count(*) FROM results WHERE run_id = 1") == [(2,)]
        history = rows(session, "SELECT epoch, attempt FROM history WHERE run_id = 1 ORDER BY epoch")
        assert history == [(e, 1) for e in range(1, 6)]
        assert rows(session, "SELECT count(*) FROM history WHERE run_id = 3") == [(3,)]
        assert rows(session, "SELECT count(*) FROM runs_all WHERE run_id = 1") == [(6,)]
        assert rows(session, "SELECT count(*), count(DISTINCT sweep_id) FROM sweeps") == [(3, 3)]


def test_relations_convert_to_dataframes_and_arrow(store: Store) -> None:
    with open_store(store.path) as session:
        frame = session.sql("SELECT * FROM run_results ORDER BY run_id").df()
        assert list(frame.columns) == RUN_RESULTS_COLUMNS and len(frame) == 4
        table = session.sql("SELECT run_id, time FROM runs").arrow().read_all()
        assert table.num_rows == 5
        assert session.sql("SELECT time FROM runs").fetchall()[0][0].tzinfo is None  # naive UTC


def test_open_store_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no Mosaic store"):
        open_store(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="neither a Mosaic store"):
        open_store(tmp_path / "notes.txt")


def test_legacy_database_has_the_same_views(tmp_path: Path) -> None:
    with open_store(LEGACY_DB, run_files=LEGACY_RUNS) as session:
        for view, columns in VIEW_COLUMNS.items():
            assert session.sql(f"SELECT * FROM {view}").columns == columns, view
        assert rows(session, "SELECT run_id FROM params WHERE param_name='mlp_brick_width' AND param_value=3 ORDER BY 1") == [(3,), (4,)]
        assert rows(session, "SELECT count(*) FROM history") == [(60,)]
        assert rows(session, "SELECT param_value FROM system") == [(9,)]
        assert rows(session, "SELECT count(*) FROM params") == [(176,)]
    with open_store(LEGACY_DB) as session:
        assert rows(session, "SELECT count(*) FROM history") == [(0,)]


def test_session_sql_refuses_writes_too(store: Store) -> None:
    with open_store(store.path) as session:
        with pytest.raises(StoreError, match="read-only"):
            session.sql("DROP VIEW runs")
        assert rows(session, "SELECT count(*) FROM runs") == [(5,)]


def _write(store: Store, sweep_id: int, run_id: int, attempt: int, epochs: range) -> None:
    rows = [{"epoch": e, "train_loss": float(attempt * 100 + e), "test_loss": 0.0} for e in epochs]
    for row in history_rows(run_id, attempt, rows, now()):  # one file per epoch, as a live sweep writes
        store.append("history", [row], sweep_id)


def test_history_view_latest_attempt_wins_per_epoch(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", create=True)
    _write(store, 1, 1, 0, range(1, 6))  # run 1: 5 epochs, then a rerun for 2 more
    _write(store, 2, 1, 1, range(6, 8))
    _write(store, 1, 2, 0, range(1, 6))  # run 2 interrupted after epoch 5, its checkpoint at epoch 3,
    _write(store, 3, 2, 1, range(4, 5))  # resumed (attempt 1) from it: epoch 4 so far
    _write(store, 1, 3, 0, range(1, 5))  # run 3 interrupted after epoch 4, resumed keeping attempt 0
    _write(store, 4, 3, 0, range(3, 4))  # from its checkpoint at epoch 2, in a new sweep
    with open_store(store.path) as session:
        got = session.sql("SELECT run_id, epoch, attempt, train_loss FROM history ORDER BY run_id, epoch").fetchall()
    assert [(r, e, a) for r, e, a, _ in got] == [
        *[(1, e, 0) for e in range(1, 6)], (1, 6, 1), (1, 7, 1),
        (2, 1, 0), (2, 2, 0), (2, 3, 0), (2, 4, 1),
        (3, 1, 0), (3, 2, 0), (3, 3, 0),
    ]
    assert got[-1][3] == 3.0  # run 3's epoch 3 is the resume's row (the latest sweep), not the old one


# -- concurrency ---------------------------------------------------------------------------
def test_queries_keep_working_while_a_sweep_writes(store: Store) -> None:
    writer = SweepWriter(store)
    errors: list[BaseException] = []

    thread = writing_thread(writer, range(20, 40), errors)
    seen = []
    deadline = time.monotonic() + 120
    with open_store(store.path) as session:
        thread.start()
        while thread.is_alive() and time.monotonic() < deadline:
            seen.append(rows(session, "SELECT count(*) FROM runs WHERE status = 'done'")[0][0])
            rows(session, "SELECT count(*) FROM params p JOIN history h USING (run_id)")
        thread.join(timeout=60)
        assert not thread.is_alive()
        seen.append(rows(session, "SELECT count(*) FROM runs WHERE status = 'done'")[0][0])
    assert not errors
    assert seen == sorted(seen) and seen[-1] == 24


# -- the contract every store state honours ----------------------------------------------
@pytest.fixture(params=STORE_STATES)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A store in one of the states the views must handle."""
    with store_in_state(request.param, tmp_path / "store") as path:
        yield path


CONTRACT = {
    "runs key": "SELECT count(*) - count(DISTINCT run_id) FROM runs",
    "params key": "SELECT count(*) - count(DISTINCT (run_id, param_name)) FROM params",
    "run_results key": "SELECT count(*) - count(DISTINCT run_id) FROM run_results",
    "results key": "SELECT count(*) - count(DISTINCT (run_id, attempt)) FROM results",
    "history key": "SELECT count(*) - count(DISTINCT (run_id, epoch)) FROM history",
    "sweeps key": "SELECT count(*) - count(DISTINCT sweep_id) FROM sweeps",
    "one status param per run, the run's": """
        SELECT count(*) FROM runs r LEFT JOIN params p ON p.run_id = r.run_id AND p.param_name = 'status'
        WHERE p.param_value IS DISTINCT FROM r.status""",
    "done runs have an empty traceback": """
        SELECT count(*) FROM runs r JOIN params p ON p.run_id = r.run_id AND p.param_name = 'traceback'
        WHERE r.status = 'done' AND p.param_value <> ''""",
    "results belong to runs": "SELECT count(*) FROM run_results WHERE run_id NOT IN (SELECT run_id FROM runs)",
    "history belongs to runs": "SELECT count(*) FROM history WHERE run_id NOT IN (SELECT run_id FROM runs)",
    "epochs run 1..n": "SELECT count(*) FROM (SELECT run_id FROM history GROUP BY run_id HAVING max(epoch) <> count(*) OR min(epoch) <> 1)",
    "history is the latest attempt": """
        SELECT count(*) FROM history h JOIN (SELECT run_id, max(attempt) AS a FROM history_all GROUP BY run_id) l
        USING (run_id) WHERE h.attempt <> l.a""",
    "next_run_id beyond every run": """
        SELECT count(*) FROM system WHERE param_name = 'next_run_id'
        AND param_value <= (SELECT coalesce(max(run_id), 0) FROM runs)""",
}


def test_store_contract(state: Path) -> None:
    with open_store(state) as session:
        for view, columns in VIEW_COLUMNS.items():
            assert session.sql(f"SELECT * FROM {view} LIMIT 0").columns == columns
        broken = {rule: found for rule, sql in CONTRACT.items() if (found := session.sql(sql).fetchall()) != [(0,)]}
    assert not broken


def test_store_contract_export_and_selection(state: Path, tmp_path: Path) -> None:
    out = export(state, tmp_path / "out.db")
    assert out.is_file()
    with open_store(state) as session:
        ids = sorted(r for (r,) in session.sql("SELECT run_id FROM runs").fetchall())
    if not ids:
        with pytest.raises(SelectionError):
            select_runs(state, Selection(ids="all"))
    else:
        assert select_runs(state, Selection(ids="all"))[: len(ids)] == ids


# -- params.param_value compares like the original's sqlite column ---------------------------
WIDTH = "param_name = 'mlp_brick_width'"


OLD_QUERIES = [
    f"SELECT run_id FROM params WHERE {WIDTH} AND param_value > 2",
    "SELECT run_id, param_name FROM params WHERE param_value > 2",
    f"SELECT run_id FROM params WHERE {WIDTH} AND param_value = 3",
    "SELECT run_id, param_name FROM params WHERE param_value = '2' OR param_value = 3",  # text '2', integer 3
    f"SELECT run_id FROM params WHERE ({WIDTH} OR param_name = 'mlp_broken_width') AND param_value = '2'",
    "SELECT run_id, param_name FROM params WHERE param_value >= '2'",  # integers are below any text
    f"SELECT run_id FROM params WHERE {WIDTH} AND param_value < 4",
    f"SELECT run_id FROM params WHERE {WIDTH} AND param_value IN (2, 4)",
    "SELECT run_id, param_name FROM params WHERE param_value LIKE 'brick%'",
    "SELECT run_id FROM params WHERE param_name = 'mlp_key' AND param_value = 'brick_3'",
    "SELECT run_id, param_name FROM params WHERE param_value BETWEEN 2 AND 3",
]


ORDERED = ("SELECT run_id, param_name, CAST(param_value AS TEXT) FROM params "
           "WHERE param_name IN ('mlp_brick_width', 'mlp_key', 'lr', 'epochs') ORDER BY param_value, run_id, param_name")


def sqlite_rows(sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{LEGACY_DB}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("imported") / "store"
    import_db(LEGACY_DB, store)
    return store


@pytest.mark.parametrize("sql", OLD_QUERIES)
def test_old_sql_answers_like_the_original_sqlite_file(imported: Path, sql: str) -> None:
    expected = sorted(sqlite_rows(sql))
    assert expected, f"{sql} picks nothing in the sample: it would not tell anything"
    assert len(expected) < len(sqlite_rows("SELECT run_id FROM params")), f"{sql} picks every row"
    for source in (imported, LEGACY_DB):
        with open_store(source) as session:
            assert sorted(session.sql(sql).fetchall()) == expected, (source, sql)


def test_integers_never_equal_text(imported: Path) -> None:
    sql = f"SELECT run_id FROM params WHERE {WIDTH} AND param_value = '3'"
    assert sqlite_rows(sql) == []  # the original: 3 is not '3'
    for source in (imported, LEGACY_DB):
        with open_store(source) as session:
            assert session.sql(sql).fetchall() == []


def test_order_by_puts_numbers_before_text_as_sqlite(imported: Path) -> None:
    expected = sqlite_rows(ORDERED)
    for source in (imported, LEGACY_DB):
        with open_store(source) as session:
            assert session.sql(ORDERED).fetchall() == expected, source


def test_values_read_as_text_everywhere(imported: Path) -> None:
    sql = f"SELECT run_id, param_value FROM params WHERE {WIDTH} ORDER BY run_id"
    with open_store(imported) as session:
        relation = session.sql(sql)
        assert [str(t) for t in relation.types] == ["BIGINT", "VARCHAR"]
        assert relation.fetchall() == [(r, str(v)) for r, v in sqlite_rows(sql)]
        assert relation.df()["param_value"].tolist() == [str(v) for _, v in sqlite_rows(sql)]
        assert relation.arrow().read_all().schema.field("param_value").type == pa.string()
    with open_reader(imported) as reader:
        assert reader.params(names=["mlp_brick_width"]).schema.field("param_value").type == pa.string()
        assert reader.param_values("mlp_brick_width") == ["2", "3", "4"]


def test_export_keeps_the_original_types(imported: Path, tmp_path: Path) -> None:
    out = export(imported, tmp_path / "out.db")
    con = sqlite3.connect(out)
    try:
        exported = con.execute("SELECT param_name, typeof(param_value), count(*) FROM params GROUP BY 1, 2").fetchall()
    finally:
        con.close()
    original = sqlite_rows("SELECT param_name, typeof(param_value), count(*) FROM params GROUP BY 1, 2")
    assert sorted(exported) == sorted(original)


def test_a_new_sweep_types_range_values(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", create=True)
    build_store(store, widths=(2, 3, 9, 10))
    with open_store(store.path) as session:
        assert session.sql(f"SELECT run_id FROM params WHERE {WIDTH} AND param_value > 3 ORDER BY 1").fetchall() == [
            (3,), (4,)]
        assert session.sql("SELECT count(*) FROM params WHERE param_name = 'lr' AND param_value > 3").fetchall() == [
            (5,)]  # PROCESS values are text, as in the original


def test_a_store_written_before_param_int_still_reads(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", create=True)
    build_store(store, widths=(2, 3))
    for file in store.files("params"):  # files as an older Mosaic wrote them: no param_int column
        pq.write_table(pq.read_table(file).drop_columns(["param_int"]), file)
    with open_store(store.path) as session:
        # every value is text there: the text rules apply, nothing fails
        assert session.sql(f"SELECT run_id FROM params WHERE {WIDTH} AND param_value = '3'").fetchall() == [(2,)]
        assert session.sql(f"SELECT count(*) FROM params WHERE {WIDTH} AND param_value > 2").fetchall() == [(2,)]
    store.compact()
    with open_store(store.path) as session:
        assert session.sql(f"SELECT run_id FROM params WHERE {WIDTH} AND param_value = '3'").fetchall() == [(2,)]
