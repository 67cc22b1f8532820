"""SQL over a store: legacy views, latest-row semantics, read-only guard, output formats."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import mosaic
from mosaic.analysis.sql import query
from mosaic.errors import StoreError
from mosaic.store.session import check_read_only, open_store
from mosaic.store.writer import Store
from tests.store_rows import TRACEBACK, SweepWriter, build_store, pipeline, rerun

DATA = Path(__file__).resolve().parent / "data" / "legacy"
LEGACY_DB = DATA / "legacy_sample.db"
MOSAIC = Path(sys.executable).with_name("mosaic")

RUNS_COLUMNS = ["run_id", "status", "pipeline", "return_status", "attempt", "pipeline_json", "worker",
                "device", "error", "seed", "planned_epochs", "sweep_id", "time"]
RUN_RESULTS_COLUMNS = ["run_id", "train_loss", "test_loss", "train_acc", "test_acc", "nb_params", "duration(s)",
                       "epochs", "overfit", "trainability", "slope", "slope_std_plus", "slope_std_minus", "attempt"]
VIEW_COLUMNS = {
    "params": ["run_id", "param_name", "param_value"],
    "runs": RUNS_COLUMNS,
    "run_results": RUN_RESULTS_COLUMNS,
    "system": ["param_name", "param_value"],
    "history": ["run_id", "epoch", "attempt", "train_loss", "test_loss", "train_acc", "test_acc", "seconds",
                "time", "sweep_id"],
    "sweeps": ["sweep_id", "kind", "config_path", "config", "started", "ended", "host", "mosaic_version",
               "torch_version", "dask_version", "python_version", "store_path", "time"],
    "results": ["run_id", "attempt", "train_loss", "test_loss", "train_acc", "test_acc", "nb_params", "duration_s",
                "epochs", "overfit", "trainability", "slope", "slope_std_plus", "slope_std_minus", "time", "sweep_id"],
}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A finished sweep: runs 1-4 done (mlp_brick widths 2, 3, 4, 10), run 5 failed."""
    created = Store(tmp_path / "store", create=True)
    build_store(created)
    return created


def digest(folder: Path) -> dict[str, str]:
    """Every file under a folder and its content hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


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
    with open_store(LEGACY_DB, run_files=DATA / "legacy_runs") as session:
        for view, columns in VIEW_COLUMNS.items():
            assert session.sql(f"SELECT * FROM {view}").columns == columns, view
        assert rows(session, "SELECT run_id FROM params WHERE param_name='mlp_brick_width' AND param_value=3 ORDER BY 1") == [(3,), (4,)]
        assert rows(session, "SELECT count(*) FROM history") == [(60,)]
        assert rows(session, "SELECT param_value FROM system") == [(9,)]
        assert rows(session, "SELECT count(*) FROM params") == [(176,)]
    with open_store(LEGACY_DB) as session:
        assert rows(session, "SELECT count(*) FROM history") == [(0,)]


# -- concurrency ---------------------------------------------------------------------------
def test_queries_keep_working_while_a_sweep_writes(store: Store) -> None:
    writer = SweepWriter(store)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for width in range(20, 40):
                (run_id,) = writer.plan([pipeline("mlp_brick", width)])
                writer.start(run_id)
                writer.finish(run_id)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=write, daemon=True)
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


# -- read-only guard -----------------------------------------------------------------------
REFUSED = [
    "COPY runs TO '{store}/runs/sweep=1/evil.parquet'",
    "COPY (SELECT 1) TO '{tmp}/out.csv'",
    "ATTACH '{tmp}/other.db' AS other",
    "INSTALL httpfs",
    "LOAD sqlite",
    "CREATE TABLE t AS SELECT 1",
    "INSERT INTO runs_all SELECT * FROM runs_all",
    "DELETE FROM runs_all",
    "UPDATE runs_all SET status = 'done'",
    "DROP VIEW runs",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "SELECT 1; DROP VIEW runs",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp}/x.csv'",
    "EXPLAIN /* hidden */ ANALYZE (FORMAT json) COPY (SELECT 1) TO '{tmp}/x.csv'",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "CHECKPOINT",
    "EXPORT DATABASE '{tmp}/dump'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_parquet('{tmp}/outside.parquet')",
    "SELECT * FROM '{tmp}/outside.parquet'",
    "SELECT * FROM read_parquet('{store}/../outside.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM runs WHERE",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_refused_statements_leave_the_store_untouched(store: Store, tmp_path: Path, statement: str) -> None:
    pq.write_table(pq.read_table(store.files("runs")[0]), tmp_path / "outside.parquet")
    sql = statement.format(store=store.path, tmp=tmp_path)
    with open_store(store.path):
        pass  # the first opening may create the id lock file; compare from here
    before = digest(store.path)
    with pytest.raises(StoreError) as error:
        query(store.path, sql)
    assert "\n" not in str(error.value)
    assert digest(store.path) == before
    for leftover in ("out.csv", "x.csv", "other.db", "dump"):
        assert not (tmp_path / leftover).exists()


@pytest.mark.parametrize("statement", [
    "SELECT 1", "WITH a AS (SELECT 1 AS x) SELECT x FROM a", "VALUES (1), (2)", "DESCRIBE runs", "SHOW TABLES",
    "EXPLAIN SELECT * FROM runs", "PRAGMA table_info('runs')", "SUMMARIZE run_results", "FROM params LIMIT 1",
])
def test_read_statements_are_allowed(store: Store, statement: str) -> None:
    check_read_only(statement)
    assert query(store.path, statement, format="csv")


def test_session_sql_refuses_writes_too(store: Store) -> None:
    with open_store(store.path) as session:
        with pytest.raises(StoreError, match="read-only"):
            session.sql("DROP VIEW runs")
        assert rows(session, "SELECT count(*) FROM runs") == [(5,)]


# -- output formats ----------------------------------------------------------------------
def test_formats(store: Store, tmp_path: Path) -> None:
    sql = 'SELECT run_id, "duration(s)", train_loss FROM run_results ORDER BY run_id'
    table = query(store.path, sql)
    assert table.splitlines()[0].split() == ["run_id", "duration(s)", "train_loss"]
    assert table.rstrip().endswith("(4 rows)")
    parsed = list(csv.DictReader(io.StringIO(query(store.path, sql, format="csv"))))
    assert [r["run_id"] for r in parsed] == ["1", "2", "3", "4"] and parsed[0]["duration(s)"] == "0.51"
    records = json.loads(query(store.path, "SELECT run_id, time, error FROM runs WHERE run_id = 5", format="json"))
    assert records[0]["run_id"] == 5 and records[0]["error"] == TRACEBACK and isinstance(records[0]["time"], str)
    message = query(store.path, sql, format="parquet", output=tmp_path / "out.parquet")
    assert message.startswith("4 rows written")
    assert pq.read_table(tmp_path / "out.parquet").column_names == ["run_id", "duration(s)", "train_loss"]
    query(store.path, sql, format="csv", output=tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().startswith("run_id,duration(s),train_loss")
    with pytest.raises(StoreError, match="-o"):
        query(store.path, sql, format="parquet")
    with pytest.raises(StoreError, match="inside the store"):
        query(store.path, sql, format="csv", output=store.path / "x.csv")
    with pytest.raises(StoreError, match="query failed"):
        query(store.path, "SELECT nope FROM runs")


def test_public_api_names() -> None:
    assert mosaic.open_store is open_store and mosaic.query is query


# -- CLI ---------------------------------------------------------------------------------
def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MOSAIC), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_query_formats_and_refusal(store: Store, tmp_path: Path) -> None:
    # the query (a Binder Error before param_value compared like the original's sqlite)
    old_sql = "SELECT run_id, param_value FROM params WHERE param_name='mlp_brick_width' AND param_value > 3 ORDER BY 1"
    done = run_cli("query", store.path, old_sql, "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["run_id,param_value", "3,4", "4,10"]
    as_json = run_cli("query", store.path, old_sql, "--format", "json")
    assert json.loads(as_json.stdout) == [{"run_id": 3, "param_value": "4"}, {"run_id": 4, "param_value": "10"}]
    run_cli("query", store.path, old_sql, "--format", "parquet", "-o", tmp_path / "p.parquet")
    assert pq.read_table(tmp_path / "p.parquet").column("param_value").to_pylist() == ["4", "10"]
    before = digest(store.path)
    refused = run_cli("query", store.path, f"COPY runs TO '{store.path}/runs/sweep=1/x.parquet'")
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "read-only" in refused.stderr
    assert digest(store.path) == before
    missing = run_cli("query", tmp_path / "nowhere", "SELECT 1")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    legacy = tmp_path / "legacy.db"
    shutil.copy(LEGACY_DB, legacy)
    on_db = run_cli("query", legacy, 'SELECT count(*) AS n FROM run_results', "--format", "json")
    assert on_db.returncode == 0 and json.loads(on_db.stdout) == [{"n": 6}]
    written = run_cli("query", store.path, "SELECT * FROM history", "--format", "parquet", "-o", tmp_path / "h.parquet")
    assert written.returncode == 0 and pq.read_table(tmp_path / "h.parquet").num_rows == 12
