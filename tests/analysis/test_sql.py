"""``mosaic query``: SQL over a store, its read-only guard and its output formats (the views it
queries are tested with the session, tests/store/test_session.py)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import mosaic
from mosaic.analysis.sql import query
from mosaic.errors import StoreError
from mosaic.store.session import check_read_only, open_store
from mosaic.store.writer import Store
from tests.helpers import LEGACY_DB, MOSAIC
from tests.helpers.stores import TRACEBACK, build_store


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
