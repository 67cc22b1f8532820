"""The store writer's compaction changes no view, even read while it runs or killed half-way
(the contract every store state honours is tested with the session, tests/store/test_session.py)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

from mosaic.analysis.sql import query
from mosaic.store.session import open_store
from tests.helpers import MOSAIC
from tests.helpers.stores import (
    VIEW_COLUMNS,
    WAIT_S,
    SweepWriter,
    busy_store,
    pipeline,
    writing_thread,
)

VIEWS = tuple(VIEW_COLUMNS) + ("runs_all", "params_all", "results_all", "history_all", "sweeps_all")


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

    def compact() -> None:
        try:
            while not stop.wait(0.02):
                store.compact()
        except BaseException as exc:
            failures.append(exc)

    threads = [writing_thread(writer, range(20, 40), failures), threading.Thread(target=compact, daemon=True)]
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
    done = subprocess.run([str(MOSAIC), "compact", str(store.path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "partitions compacted" in done.stdout
    assert every_view(store.path) == before
