"""params.param_value compares like the original's untyped sqlite column (issue 10).

The original stored range values as INTEGER and everything else as TEXT; sqlite orders
numbers before text and never equates 3 with '3'. The same old queries must answer the same
rows on a store imported from an original database, on that database read directly, and on
the sqlite file itself.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mosaic.analysis.legacy import export, import_db
from mosaic.store.reader import open_reader
from mosaic.store.session import open_store
from mosaic.store.writer import Store
from tests.store_rows import build_store

LEGACY_DB = Path(__file__).resolve().parent / "data" / "legacy" / "legacy_sample.db"
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
