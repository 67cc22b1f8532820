"""Compaction changes no view; the store contract holds empty, mid-sweep, compacted, imported."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mosaic.analysis.legacy import export, import_db
from mosaic.analysis.sql import query
from mosaic.errors import SelectionError
from mosaic.store.reader import select_runs
from mosaic.store.selection import Selection
from mosaic.store.session import open_store
from mosaic.store.writer import Store
from tests.store_rows import SweepWriter, build_store, pipeline, rerun
from tests.test_sql import VIEW_COLUMNS

DATA = Path(__file__).resolve().parent / "data" / "legacy"
#: the longest any wait on a background thread may take (a hang fails instead of blocking the suite)
WAIT_S = 300.0
VIEWS = tuple(VIEW_COLUMNS) + ("runs_all", "params_all", "results_all", "history_all", "sweeps_all")


def busy_store(path: Path) -> Store:
    """Two sweeps of small files, a rerun, superseding params, a sweep still open."""
    store = Store(path, create=True)
    build_store(store, widths=(2, 3, 4))
    build_store(store, widths=(5, 6), failing=0, epochs=4)
    rerun(store, [1, 6], epochs=6)
    writer = SweepWriter(store)
    store.append("params", [{"run_id": 2, "param_name": "mlp_key", "param_value": "renamed"}], writer.sweep_id)
    (pending, running) = writer.plan([pipeline("mlp_brick", 8), pipeline("mlp_brick", 9)])
    writer.start(running)
    return store


def every_view(path: Path) -> dict[str, list[tuple]]:
    """Each view's rows, sorted (so file order does not matter)."""
    with open_store(path) as session:
        return {view: sorted(session.sql(f"SELECT * FROM {view}").fetchall(), key=repr) for view in VIEWS}


def test_compaction_changes_no_view(tmp_path: Path) -> None:
    store = busy_store(tmp_path / "store")
    before = every_view(store.path)
    files_before = sum(len(store.files(t)) for t in ("runs", "params", "results", "history", "sweeps"))
    result = store.compact()
    assert result.files_before == files_before and result.files_after < files_before
    assert all(len(list(folder.iterdir())) == 1 for folder in store.path.glob("*/sweep=*"))
    assert every_view(store.path) == before
    store.compact()  # compacting a compacted store is harmless
    assert every_view(store.path) == before


def test_views_ignore_files_a_compaction_has_merged_but_not_deleted(tmp_path: Path) -> None:
    store = busy_store(tmp_path / "store")
    before = every_view(store.path)
    backup = tmp_path / "backup"
    shutil.copytree(store.path, backup)
    store.compact()
    # the moment after the merged file is renamed in and before the merged files are deleted
    # (or a compaction killed there): old and merged files side by side
    for old in backup.glob("*/sweep=*/*.parquet"):
        target = store.path / old.relative_to(backup)
        if not target.exists():
            shutil.copy(old, target)
    assert every_view(store.path) == before
    writer = SweepWriter(store)  # a file written after the compaction still counts
    (new,) = writer.plan([pipeline("mlp_brick", 12)])
    with open_store(store.path) as session:
        assert session.sql(f"SELECT status FROM runs WHERE run_id = {new}").fetchall() == [("pending",)]


def test_reading_while_compacting_and_writing(tmp_path: Path) -> None:
    store = busy_store(tmp_path / "store")
    writer = SweepWriter(store)
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for width in range(20, 40):
                (run_id,) = writer.plan([pipeline("mlp_brick", width)])
                writer.start(run_id)
                writer.finish(run_id)
        except BaseException as exc:
            failures.append(exc)

    def compact() -> None:
        try:
            while not stop.wait(0.02):
                store.compact()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, daemon=True), threading.Thread(target=compact, daemon=True)]
    for thread in threads:
        thread.start()
    done = []
    deadline = time.monotonic() + WAIT_S
    while threads[0].is_alive() and time.monotonic() < deadline:
        text = query(store.path, "SELECT count(*) AS n FROM runs WHERE status = 'done'", format="csv")
        done.append(int(text.split()[1]))
        query(store.path, "SELECT count(*) FROM history h JOIN params p USING (run_id)", format="csv")
    stop.set()
    for thread in threads:
        thread.join(timeout=WAIT_S)
    assert not any(thread.is_alive() for thread in threads), "a writer or compactor thread hangs"
    assert not failures
    assert done == sorted(done)
    with open_store(store.path) as session:
        assert session.sql("SELECT count(*) FROM runs WHERE status = 'done'").fetchall() == [(25,)]  # 5 + 20 written meanwhile
        assert session.sql("SELECT count(*) - count(DISTINCT (run_id, epoch)) FROM history").fetchall() == [(0,)]


def test_cli_compact(tmp_path: Path) -> None:
    store = busy_store(tmp_path / "store")
    before = every_view(store.path)
    done = subprocess.run([str(Path(sys.executable).with_name("mosaic")), "compact", str(store.path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "partitions compacted" in done.stdout
    assert every_view(store.path) == before


# -- the contract every store state honours ----------------------------------------------
STATES = ["empty", "mid-sweep", "compacted", "imported"]


@contextlib.contextmanager
def store_in_state(kind: str, path: Path) -> Iterator[Path]:
    """A store at ``path`` in one of the states every reader must handle (:data:`STATES`);
    for ``mid-sweep``, files keep arriving from a background writer while the body runs."""
    if kind == "empty":
        Store(path, create=True)
    elif kind == "compacted":
        busy_store(path).compact()
    elif kind == "imported":
        import_db(DATA / "legacy_sample.db", path, history_dir=DATA / "legacy_runs")
    elif kind != "mid-sweep":
        raise ValueError(f"unknown store state {kind!r}")
    if kind != "mid-sweep":
        yield path
        return
    writer = SweepWriter(busy_store(path))
    stop = threading.Event()

    def write() -> None:
        width = 100
        while not stop.wait(timeout=0.005):
            (run_id,) = writer.plan([pipeline("mlp_brick", width)])
            writer.start(run_id)
            writer.finish(run_id)
            width += 1

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(timeout=WAIT_S)
        assert not thread.is_alive(), "the background writer did not stop"


@pytest.fixture(params=STATES)
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
