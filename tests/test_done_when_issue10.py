"""Issue 10's done-when, through the legacy CLI entry points, as a user would type them.

The original's example classes (tests/data/original_examples: the same API calls and shapes
as its shipped dataset.py, mlp.py and loss_function.py), a config with
``class_loss_function = Mse``, ``batch_size = 8``, two model classes and ``cache_size = 1M``:
``mosaic_run`` ends with every run done and the best run learns OR;
``mosaic_rerun CONFIG STORE -id 1-2 -epoch 2`` continues runs 1 and 2 (8 epochs) to 10.
Each command starts its own embedded LocalCluster, as it would for a user.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_compat import EXAMPLES, OR_TABLE, Files

BIN = Path(sys.executable).parent
TIMEOUT_S = 300


@pytest.fixture
def server() -> Iterator[Files]:
    """The OR truth table over HTTP on 127.0.0.1 (the data class downloads it)."""
    files = Files({"or.csv": OR_TABLE})
    yield files
    files.close()


def cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def query(store: Path, sql: str, cwd: Path) -> list[dict]:
    return json.loads(cli(BIN / "mosaic", "query", store, sql, "--format", "json", cwd=cwd).stdout)


def test_original_examples_through_the_legacy_commands(server: Files, tmp_path: Path) -> None:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    config = folder / "config.ini"
    text = config.read_text().replace("epochs = 30", "epochs = 8")
    for token, value in {"CACHE_DIR": tmp_path / "cache", "DATA_URL": server.url("or.csv"), "DATA_DIR": tmp_path / "data"}.items():
        text = text.replace(token, str(value))
    assert "class_loss_function = Mse" in text and "batch_size = 8" in text and "cache_size = 1M" in text
    config.write_text(text)
    store = tmp_path / "store"

    cli(BIN / "mosaic_run", config, store, "--no-progress", cwd=folder)
    runs = query(store, "SELECT run_id, status, pipeline FROM runs ORDER BY run_id", folder)
    assert [r["status"] for r in runs] == ["done", "done"] and len({r["pipeline"] for r in runs}) == 2
    first = {r["run_id"]: r for r in query(store, "SELECT run_id, epochs, test_loss FROM run_results", folder)}
    assert {r: v["epochs"] for r, v in first.items()} == {1: 8, 2: 8}
    assert min(v["test_loss"] for v in first.values()) < 0.05  # learns OR (the targets' variance is 0.17)

    cli(BIN / "mosaic_rerun", config, store, "-id", "1-2", "-epoch", "2", "--no-progress", cwd=folder)
    again = {r["run_id"]: r for r in query(store, "SELECT run_id, epochs, attempt, test_loss FROM run_results", folder)}
    assert {r: (v["epochs"], v["attempt"]) for r, v in again.items()} == {1: (10, 1), 2: (10, 1)}
    history = query(store, "SELECT run_id, count(*) AS n, max(epoch) AS last FROM history GROUP BY 1 ORDER BY 1", folder)
    assert [(h["n"], h["last"]) for h in history] == [(10, 10), (10, 10)]
    assert min(v["test_loss"] for v in again.values()) < 0.05  # continued, not restarted

    # the old numeric SQL answers the same rows on the store and on the sqlite file savedb writes
    copy = tmp_path / "copy.db"
    cli(BIN / "mosaic_savedb", store, copy, cwd=folder)
    con = sqlite3.connect(copy)
    try:
        for sql in ("SELECT run_id, param_name FROM params WHERE param_value > 2 ORDER BY 1, 2",
                    "SELECT run_id FROM params WHERE param_name = 'mlp_funnel_width' AND param_value = '8' ORDER BY 1",
                    "SELECT run_id, param_name FROM params WHERE param_value LIKE 'mlp%' ORDER BY 1, 2"):
            ours = [tuple(r.values()) for r in query(store, sql, folder)]
            assert ours == con.execute(sql).fetchall() and ours, sql
    finally:
        con.close()
