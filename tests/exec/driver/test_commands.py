"""The sweep commands (mosaic.exec.driver.commands), end to end: ``run`` and ``rerun`` on the
session LocalCluster, the store read back through DuckDB; the original tool's examples run
unchanged, learn OR and continue.

The classes under tests/data/original_examples/ use the original's API the way its shipped
examples do; their sweep runs against a real HTTP server.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

import mosaic
from mosaic import cache
from mosaic.errors import ConfigError
from mosaic.exec.driver.commands import rerun, run
from mosaic.exec.wire.events import Event
from mosaic.store.selection import Selection
from mosaic.store.writer import Store
from tests.helpers import ORIGINAL_EXAMPLES as EXAMPLES
from tests.helpers.servers import Files
from tests.helpers.stores import parquet_rows


def test_legacy_history_files_are_those_export_writes(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    """[MONITOR] legacy_history = True: each run writes the original's history_<id>.pt, the same
    file `mosaic export --history-dir` writes from the store (NaN for a missing accuracy)."""
    config = sweep_dir / "tiny.ini"
    config.write_text(config.read_text().replace("[MONITOR]", "[MONITOR]\nlegacy_history = True")
                      .replace("[PROCESS]", "[PROCESS]\naccuracy = none"))
    store = tmp_path / "store"
    assert run(config, store, dask_client).counts == {"done": 4}
    mosaic.export(store, tmp_path / "out.db", history_dir=tmp_path / "exported")
    for run_id in (1, 2, 3, 4):
        written = torch.load(sweep_dir / "run_files" / f"history_{run_id}.pt", weights_only=True)
        exported = torch.load(tmp_path / "exported" / f"history_{run_id}.pt", weights_only=True)
        assert written.keys() == exported.keys() == {"train_loss", "test_loss", "train_acc", "test_acc"}
        assert written["test_loss"] == exported["test_loss"] and len(written["test_loss"]) == 1
        assert all(math.isnan(v) for v in written["train_acc"] + exported["train_acc"])


def test_tutorial_sweep_fills_the_store(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    events: list[Event] = []
    summary = run(sweep_dir / "tiny.ini", store, dask_client, on_event=events.append)

    assert summary.exit_code == 0 and summary.counts == {"done": 4}
    runs = sorted(parquet_rows(store, "runs"), key=lambda r: r["run_id"])
    assert [r["run_id"] for r in runs] == [1, 2, 3, 4]
    assert {r["status"] for r in runs} == {"done"}
    assert runs[0]["pipeline"] == "dataset_OR(4,40,0.8) | mlp_funnel(2,2)"
    assert runs[0]["return_status"].startswith("train_loss=") and "\ttest_loss=" in runs[0]["return_status"]
    assert all(r["attempt"] == 0 and r["seed"] is not None and r["worker"] for r in runs)
    # every run was pending before it started, and running is recorded too
    history_of_1 = [r["status"] for r in parquet_rows(store, "runs", "run_id = 1 ORDER BY time", latest=None)]
    assert history_of_1 == ["pending", "running", "done"]
    results = parquet_rows(store, "results")
    assert len(results) == 4 and all(r["epochs"] == 1 and r["nb_params"] > 0 for r in results)
    assert len(parquet_rows(store, "history", latest=None)) == 4
    params = {(r["param_name"], r["param_value"]) for r in parquet_rows(store, "params", "run_id = 1", latest=None)}
    assert ("mlp_funnel_width", "2") in params and ("mlp_key", "mlp_funnel") in params
    assert ("database_path", str(store.resolve())) in params and ("lr", "1e-2") in params
    assert any(name == "pipeline" for name, _ in params)
    (sweep,) = parquet_rows(store, "sweeps", latest="sweep_id")
    assert sweep["kind"] == "run" and sweep["ended"] is not None and "[PROCESS]" in sweep["config"]
    assert sweep["torch_version"] and sweep["dask_version"] and sweep["python_version"]
    # compacted: one file per table for the sweep
    for table in ("runs", "params", "results", "history", "sweeps"):
        assert len(Store(store).files(table, 1)) == 1, table
    assert (sweep_dir / "run_files" / "output_1.log").is_file()
    assert not list((sweep_dir / "run_files").glob("history_*.pt"))  # only with legacy_history = True
    # the original's flow still plots: a saved copy and the run files take the histories from the store
    mosaic.savedb(store, tmp_path / "copy.db")
    with mosaic.open_store(tmp_path / "copy.db", run_files=sweep_dir / "run_files") as saved:
        curves = saved.fetch("SELECT run_id, epoch, test_loss FROM history ORDER BY run_id")
    assert curves == [(r["run_id"], r["epoch"], r["test_loss"]) for r in sorted(parquet_rows(store, "history", latest=None), key=lambda r: r["run_id"])]
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["cluster", "start"] and kinds[-1] == "end" and kinds.count("finished") == 4
    text = summary.render()
    assert "4 done" in text and "mlp_brick" in text and "mlp_funnel" in text and "mosaic query" in text


def test_two_concurrent_sweeps_never_share_a_run_id(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    Store(store, create=True)
    summaries: list[Any] = []
    threads = [
        threading.Thread(target=lambda: summaries.append(run(sweep_dir / "tiny.ini", store, dask_client)), daemon=True)
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(summaries) == 2 and all(s.exit_code == 0 for s in summaries)
    first, second = ({r for r, *_ in s.runs} for s in summaries)
    assert not first & second and first | second == set(range(1, 9))
    assert len(parquet_rows(store, "results")) == 8


def test_bad_config_writes_nothing(sweep_dir: Path, tmp_path: Path) -> None:
    config = sweep_dir / "tiny.ini"
    config.write_text(config.read_text().replace("width = {2-3}", "width = {3-2}"))
    with pytest.raises(ConfigError, match=r"\{3-2\} runs backwards"):
        run(config, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_rerun_continues_from_checkpoints(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    assert run(sweep_dir / "tiny.ini", store, dask_client).exit_code == 0
    summary = rerun(sweep_dir / "tiny.ini", store, Selection(ids="1-2"), epochs=2, client=dask_client)

    assert summary.exit_code == 0 and summary.kind == "rerun" and sorted(r for r, *_ in summary.runs) == [1, 2]
    results = {r["run_id"]: r for r in parquet_rows(store, "results")}
    assert results[1]["epochs"] == 3 and results[1]["attempt"] == 1
    assert results[3]["epochs"] == 1 and results[3]["attempt"] == 0
    epochs = sorted(r["epoch"] for r in parquet_rows(store, "history", "run_id = 1 AND attempt = 1", latest=None))
    assert len(epochs) == 3
    kinds = [r["kind"] for r in parquet_rows(store, "sweeps", latest="sweep_id")]
    assert sorted(kinds) == ["rerun", "run"]


# --- the original's examples, end to end -------------------------------------------------------
def _query(store: Path, sql: str) -> list[dict[str, Any]]:
    return json.loads(mosaic.query(store, sql, format="json"))


def test_original_examples_sweep_learn_or_and_rerun(files: Files, tmp_path: Path, dask_client: Any) -> None:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    config = folder / "config.ini"
    text = config.read_text()
    for token, value in {"CACHE_DIR": tmp_path / "cache", "DATA_URL": files.url("or.csv"), "DATA_DIR": tmp_path / "data"}.items():
        text = text.replace(token, str(value))
    config.write_text(text)
    store = tmp_path / "store"

    summary = mosaic.run(config, store, dask_client)

    runs = _query(store, "SELECT run_id, status, error FROM runs ORDER BY run_id")
    assert [r["status"] for r in runs] == ["done", "done"], runs
    assert summary.exit_code == 0
    best = _query(store, "SELECT min(test_loss) AS best, max(epochs) AS epochs FROM run_results")[0]
    assert best["epochs"] == 30
    assert best["best"] < 0.02  # OR learnt; a (B, B) broadcast stays near the targets' variance (0.17)
    # the truth table was downloaded once for both runs, into the folder given, and registered
    assert files.requests == {"/or.csv": 1}
    registry = cache.registered(tmp_path / "cache")
    assert str(tmp_path / "data" / "or_table.csv") in registry
    assert any(Path(p).name.startswith("or_sample_") for p in registry)
    # every worker points its cache at MONITOR cache_database_path / cache_size
    settings = dask_client.run(lambda: (str(cache.default_cache_dir()), cache._defaults.max_bytes))
    assert set(settings.values()) == {(str(tmp_path / "cache"), 1024**2)}

    again = mosaic.rerun(config, store, mosaic.Selection(ids="1-2"), epochs=2, client=dask_client)

    assert again.exit_code == 0 and sorted(r for r, *_ in again.runs) == [1, 2]
    rows = _query(store, "SELECT run_id, epochs, attempt, test_loss FROM run_results ORDER BY run_id")
    assert [(r["epochs"], r["attempt"]) for r in rows] == [(32, 1), (32, 1)]
    assert min(r["test_loss"] for r in rows) < 0.02  # continued from the trained state, not from scratch
    log = (folder / "run_files" / "output_1.log").read_text()
    assert "mosaic: load_model of mlp_funnel (pipeline module 1) failed" in log
    assert "restored from the run's checkpoint instead" in log
