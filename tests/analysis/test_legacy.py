"""The original four-table sqlite layout: export, savedb, import (the fixture), rekey."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import torch

import mosaic
from mosaic.analysis.legacy import export, import_db, rekey, savedb
from mosaic.errors import LegacyError, StoreError, UsageError
from mosaic.store.session import open_store
from mosaic.store.writer import Store
from mosaic.sweep import write_pipelines
from tests.helpers import BIN, LEGACY_DB, LEGACY_RUNS
from tests.helpers.stores import TRACEBACK, SweepWriter, build_store, pipeline, writing_thread

TABLES = ("params", "run_results", "runs", "system")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Runs 1-4 done (mlp_brick widths 2, 3, 4, 10), run 5 failed."""
    created = Store(tmp_path / "store", create=True)
    build_store(created)
    return created


def schema(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def typed_rows(db: Path, table: str) -> list[tuple]:
    """Every row with each value's sqlite type, sorted."""
    with sqlite3.connect(db) as con:
        columns = [c[1] for c in con.execute(f"PRAGMA table_info({table})")]
        select = ", ".join(f'"{c}", typeof("{c}")' for c in columns)
        return sorted(con.execute(f"SELECT {select} FROM {table}").fetchall(), key=repr)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(program: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / program), *map(str, args)], capture_output=True, text=True, timeout=120)


# -- export ------------------------------------------------------------------------------
def test_export_writes_exactly_the_original_tables(store: Store, tmp_path: Path) -> None:
    out = export(store.path, tmp_path / "out.db")
    assert schema(out) == schema(LEGACY_DB)
    with sqlite3.connect(out) as con:
        types = dict(con.execute("SELECT param_name, typeof(param_value) FROM params WHERE run_id = 1"))
        assert types["mlp_brick_width"] == "integer"  # a range value: an integer in the pipeline JSON
        assert {t for n, t in types.items() if n != "mlp_brick_width"} == {"text"}
        assert con.execute("SELECT param_value FROM params WHERE run_id = 5 AND param_name = 'traceback'").fetchall() == [(TRACEBACK,)]
        assert con.execute("SELECT param_value FROM params WHERE run_id = 2 AND param_name = 'status'").fetchall() == [("done",)]
        assert con.execute('SELECT run_id, "duration(s)", typeof(nb_params) FROM run_results ORDER BY run_id').fetchall() == [
            (1, 0.51, "integer"), (2, 0.52, "integer"), (3, 0.53, "integer"), (4, 0.54, "integer")]
        assert con.execute("SELECT * FROM system").fetchall() == [("next_run_id", 6)]
        status, return_status = con.execute("SELECT status, return_status FROM runs WHERE run_id = 5").fetchone()
        assert (status, return_status) == ("error", TRACEBACK)
        assert con.execute("SELECT pipeline FROM runs WHERE run_id = 2").fetchone() == (
            "dataset_OR(4,80,0.8) | mlp_brick(2,3)",)
        # the query a user of the original would write now matches (integer, as the original stored it)
        assert con.execute("SELECT run_id FROM params WHERE param_name = 'mlp_brick_width' AND param_value = 3").fetchall() == [(2,)]


def test_export_history_files_match_the_originals_format(store: Store, tmp_path: Path) -> None:
    export(store.path, tmp_path / "out.db", history_dir=tmp_path / "runs")
    files = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert files == [f"history_{i}.pt" for i in (1, 2, 3, 4)]
    history = torch.load(tmp_path / "runs" / "history_2.pt", weights_only=True)
    assert set(history) == {"train_loss", "test_loss", "train_acc", "test_acc"}
    assert history["train_loss"] == pytest.approx([1 / 3, 1 / 4, 1 / 5]) and history["test_acc"] == [41.0, 42.0, 43.0]


def test_export_refuses_to_overwrite_what_is_not_sqlite(store: Store, tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("my notes")
    with pytest.raises(UsageError, match="not a sqlite database; refusing to overwrite"):
        export(store.path, notes)
    assert notes.read_text() == "my notes"
    with pytest.raises(UsageError, match="is a folder"):
        export(store.path, tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        export(store.path, tmp_path / "no" / "out.db")
    copy = tmp_path / "copy.db"
    shutil.copy(LEGACY_DB, copy)
    export(store.path, copy)  # an earlier sqlite copy is replaced
    assert typed_rows(copy, "system") == [("next_run_id", "text", 6, "integer")]
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_is_consistent_while_a_sweep_writes(store: Store, tmp_path: Path) -> None:
    writer = SweepWriter(store)
    failures: list[BaseException] = []

    thread = writing_thread(writer, range(20, 45), failures)
    thread.start()
    counts = []
    deadline = time.monotonic() + 120
    while (thread.is_alive() or len(counts) < 2) and time.monotonic() < deadline:
        out = export(store.path, tmp_path / "snapshot.db")
        with sqlite3.connect(out) as con:
            assert con.execute("SELECT count(*) - count(DISTINCT run_id) FROM runs").fetchone() == (0,)
            assert con.execute("SELECT count(*) FROM (SELECT run_id, param_name FROM params GROUP BY 1, 2 HAVING count(*) > 1)").fetchone() == (0,)
            counts.append(con.execute("SELECT count(*) FROM runs").fetchone()[0])
    thread.join(timeout=60)
    assert not thread.is_alive() and not failures
    assert counts == sorted(counts)


def test_savedb_uses_the_last_store(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("MOSAIC_STATE_DIR", str(state))
    with pytest.raises(UsageError, match="no store given and none recorded"):
        savedb(None, tmp_path / "copy.db")
    state.mkdir()
    (state / "last_store").write_text(str(tmp_path / "gone"))
    with pytest.raises(UsageError, match="no longer there"):
        savedb(None, tmp_path / "copy.db")
    (state / "last_store").write_text(f"{store.path}\n")
    assert savedb(None, tmp_path / "copy.db") == tmp_path / "copy.db"
    assert typed_rows(tmp_path / "copy.db", "runs") == typed_rows(export(store.path, tmp_path / "b.db"), "runs")
    assert savedb(store.path, tmp_path / "explicit.db").is_file()


# -- import ------------------------------------------------------------------------------
def test_import_the_fixture(tmp_path: Path) -> None:
    result = import_db(LEGACY_DB, tmp_path / "store", history_dir=LEGACY_RUNS)
    assert result.statuses == {"done": 6, "error": 2} and result.results == 6 and result.histories == 6
    assert "8 runs (6 done, 2 error)" in result.render()
    with open_store(tmp_path / "store") as session, sqlite3.connect(LEGACY_DB) as con:
        ours = session.sql('SELECT * EXCLUDE (slope_std_plus, slope_std_minus, attempt) FROM run_results ORDER BY run_id').fetchall()
        assert ours == con.execute("SELECT * FROM run_results ORDER BY run_id").fetchall()
        assert session.sql("SELECT count(*) FROM run_results WHERE slope_std_plus IS NULL").fetchall() == [(6,)]
        assert session.sql("SELECT run_id, status, pipeline, return_status FROM runs ORDER BY run_id").fetchall() == \
            con.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
        assert session.sql("SELECT error FROM runs WHERE run_id = 7").fetchall()[0][0].endswith("this model always fails\n")
        assert session.sql("SELECT kind FROM sweeps").fetchall() == [("import",)]
        history = session.sql("SELECT train_loss FROM history WHERE run_id = 3 ORDER BY epoch").fetchall()
        original = torch.load(LEGACY_RUNS / "history_3.pt", weights_only=True)
        assert [v for (v,) in history] == original["train_loss"]
        assert session.sql("SELECT min(epoch), max(epoch), count(*) FROM history").fetchall() == [(1, 10, 60)]
    assert Store(tmp_path / "store").allocate_run_ids(1) == range(9, 10)


def test_round_trip_loses_nothing_the_legacy_layout_holds(tmp_path: Path) -> None:
    import_db(LEGACY_DB, tmp_path / "store", history_dir=LEGACY_RUNS)
    out = export(tmp_path / "store", tmp_path / "again.db", history_dir=tmp_path / "runs")
    assert schema(out) == schema(LEGACY_DB)
    for table in TABLES:
        assert typed_rows(out, table) == typed_rows(LEGACY_DB, table), table
    for original in LEGACY_RUNS.iterdir():
        assert torch.load(tmp_path / "runs" / original.name, weights_only=True) == torch.load(original, weights_only=True)


def test_import_refuses_run_ids_already_in_the_store(tmp_path: Path) -> None:
    import_db(LEGACY_DB, tmp_path / "store")
    before = digest(tmp_path / "store")
    with pytest.raises(StoreError, match="run ids 1-8 of .* are already in this store; import into a new store"):
        import_db(LEGACY_DB, tmp_path / "store")
    assert digest(tmp_path / "store") == before


def test_import_next_to_other_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", create=True)
    store.reserve_run_ids_from(20)
    ids = build_store(store, widths=(2,), failing=0)
    assert ids == [20]
    import_db(LEGACY_DB, store.path)
    with open_store(store.path) as session:
        assert [r for (r,) in session.sql("SELECT run_id FROM runs ORDER BY 1").fetchall()] == [1, 2, 3, 4, 5, 6, 7, 8, 20]
        assert session.sql("SELECT param_value FROM system").fetchall() == [(21,)]


def test_import_rejects_what_the_original_did_not_write(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE other (a)").connection.commit()
    with pytest.raises(LegacyError, match="no table params, run_results, system, runs; not a database written by the original tool"):
        import_db(empty, tmp_path / "store")
    (tmp_path / "text.db").write_text("not a database")
    with pytest.raises(LegacyError, match="not a sqlite database"):
        import_db(tmp_path / "text.db", tmp_path / "store")
    with pytest.raises(LegacyError, match="--history-dir .* not a folder"):
        import_db(LEGACY_DB, tmp_path / "store", history_dir=tmp_path / "missing")
    assert not (tmp_path / "store").exists()


# -- rekey -------------------------------------------------------------------------------
def test_rekey_appends_superseding_keys(store: Store, tmp_path: Path) -> None:
    regenerated = [pipeline("mlp_brick", w, key=f"b{w}") for w in (2, 3)] + [pipeline("mlp_brick", 99, key="b99")]
    write_pipelines(regenerated, tmp_path / "pipelines.json")
    before = {p: f.read_bytes() for p in store.files("params") for f in [p]}
    assert rekey(tmp_path / "pipelines.json", store.path) == 2
    assert all(p.read_bytes() == data for p, data in before.items())  # appended, never rewritten
    with open_store(store.path) as session:
        keys = session.sql("SELECT run_id, param_value FROM params WHERE param_name = 'mlp_key' ORDER BY 1").fetchall()
        assert keys == [(1, "b2"), (2, "b3"), (3, "brick_4"), (4, "brick_10"), (5, "broken")]
        stored = session.sql("SELECT param_value FROM params WHERE run_id = 2 AND param_name = 'pipeline'").fetchall()[0][0]
        assert json.loads(stored)[1]["key"] == "b3" and json.loads(stored)[0]["key"] == "data_dataset_OR"
        assert session.sql("SELECT kind FROM sweeps WHERE kind = 'rekey'").fetchall() == [("rekey",)]
    assert rekey(tmp_path / "pipelines.json", store.path) == 0


def test_rekey_an_original_database_in_place(tmp_path: Path) -> None:
    db = tmp_path / "legacy.db"
    shutil.copy(LEGACY_DB, db)
    regenerated = [
        [{**pipeline("mlp_brick", 3)[0], "path_to_class": "./classes.py", "key": "OR"},
         {**pipeline("mlp_brick", 3)[1], "path_to_class": "./classes.py", "key": "brick3"}],
    ]
    write_pipelines(regenerated, tmp_path / "pipelines.json")
    assert rekey(tmp_path / "pipelines.json", db) == 4  # runs 3 and 4, dataset and mlp keys
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT run_id, param_value FROM params WHERE param_name = 'mlp_key' AND run_id IN (2, 3, 4) ORDER BY 1").fetchall() == [
            (2, "brick_2"), (3, "brick3"), (4, "brick3")]


# -- CLI ---------------------------------------------------------------------------------
def test_cli_export_import_savedb_rekey(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = run_cli("mosaic", "export", store.path, tmp_path / "out.db", "--history-dir", tmp_path / "runs")
    assert done.returncode == 0, done.stderr
    assert "exported to" in done.stdout and (tmp_path / "runs" / "history_1.pt").is_file()
    done = run_cli("mosaic", "import", LEGACY_DB, tmp_path / "imported", "--history-dir", LEGACY_RUNS)
    assert done.returncode == 0, done.stderr
    assert "8 runs (6 done, 2 error)" in done.stdout
    again = run_cli("mosaic", "import", LEGACY_DB, tmp_path / "imported")
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1 and "already in this store" in again.stderr
    done = run_cli("mosaic_savedb", store.path, tmp_path / "copy.db")
    assert done.returncode == 0 and schema(tmp_path / "copy.db") == schema(LEGACY_DB)
    monkeypatch.setenv("MOSAIC_STATE_DIR", str(tmp_path / "nostate"))
    done = run_cli("mosaic", "savedb", tmp_path / "copy2.db")
    assert done.returncode == 2 and "none recorded" in done.stderr
    write_pipelines([pipeline("mlp_brick", 4, key="four")], tmp_path / "p.json")
    done = run_cli("mosaic_rekey", tmp_path / "p.json", store.path)
    assert done.returncode == 0 and done.stdout.strip() == "1 keys rewritten"
    assert mosaic.select_runs(store.path, mosaic.Selection(equal=("mlp_key", "four"))) == [3]
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    refused = run_cli("mosaic", "export", store.path, notes)
    assert refused.returncode == 2 and notes.read_text() == "x"
