"""Real sweeps on the session LocalCluster: the store through DuckDB, failures, Ctrl-C, reruns."""

from __future__ import annotations

import io
import math
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest
import torch

import mosaic
from mosaic.console import console_progress
from mosaic.errors import ConfigError
from mosaic.exec.driver.commands import rerun, run
from mosaic.exec.wire.events import Event
from mosaic.store.selection import Selection
from mosaic.store.writer import Store


def rows(store: Path, table: str, where: str = "true", latest: str | None = "run_id") -> list[dict[str, Any]]:
    """Rows of a store table read straight from its Parquet files (the latest per key)."""
    source = f"read_parquet('{store}/{table}/*/*.parquet', hive_partitioning = true)"
    qualify = f"QUALIFY row_number() OVER (PARTITION BY {latest} ORDER BY time DESC) = 1" if latest else ""
    return duckdb.sql(f"SELECT * FROM {source} WHERE {where} {qualify}").to_arrow_table().to_pylist()


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
    runs = sorted(rows(store, "runs"), key=lambda r: r["run_id"])
    assert [r["run_id"] for r in runs] == [1, 2, 3, 4]
    assert {r["status"] for r in runs} == {"done"}
    assert runs[0]["pipeline"] == "dataset_OR(4,40,0.8) | mlp_funnel(2,2)"
    assert runs[0]["return_status"].startswith("train_loss=") and "\ttest_loss=" in runs[0]["return_status"]
    assert all(r["attempt"] == 0 and r["seed"] is not None and r["worker"] for r in runs)
    # every run was pending before it started, and running is recorded too
    history_of_1 = [r["status"] for r in rows(store, "runs", "run_id = 1 ORDER BY time", latest=None)]
    assert history_of_1 == ["pending", "running", "done"]
    results = rows(store, "results")
    assert len(results) == 4 and all(r["epochs"] == 1 and r["nb_params"] > 0 for r in results)
    assert len(rows(store, "history", latest=None)) == 4
    params = {(r["param_name"], r["param_value"]) for r in rows(store, "params", "run_id = 1", latest=None)}
    assert ("mlp_funnel_width", "2") in params and ("mlp_key", "mlp_funnel") in params
    assert ("database_path", str(store.resolve())) in params and ("lr", "1e-2") in params
    assert any(name == "pipeline" for name, _ in params)
    (sweep,) = rows(store, "sweeps", latest="sweep_id")
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
    assert curves == [(r["run_id"], r["epoch"], r["test_loss"]) for r in sorted(rows(store, "history", latest=None), key=lambda r: r["run_id"])]
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["cluster", "start"] and kinds[-1] == "end" and kinds.count("finished") == 4
    text = summary.render()
    assert "4 done" in text and "mlp_brick" in text and "mlp_funnel" in text and "mosaic query" in text


def test_failing_and_killing_classes_fail_only_their_runs(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    summary = run(sweep_dir / "faulty.ini", store, dask_client)

    assert summary.exit_code == 1
    by_id = {r["run_id"]: r for r in rows(store, "runs")}
    assert [by_id[i]["status"] for i in (1, 2, 3, 4)] == ["done", "done", "error", "system failure"]
    assert "deliberate failure in forward" in by_id[3]["error"]
    assert "Traceback" in by_id[3]["return_status"]
    assert "worker process died" in by_id[4]["error"]
    assert "deliberate failure in forward" in (sweep_dir / "run_files" / "output_3.log").read_text()
    assert {r["run_id"] for r in rows(store, "results")} == {1, 2}
    assert summary.failed == [3, 4]
    report = mosaic.status(store).render()
    assert "\t[3] dataset_OR(4,40,0.8) | mlp_fail(2)\n\t\tRuntimeError: deliberate failure in forward" in report
    assert "(system failure)" in report
    # the killed worker was replaced: the cluster still runs both workers
    dask_client.wait_for_workers(2, timeout=60)


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
    assert len(rows(store, "results")) == 8


def test_bad_config_writes_nothing(sweep_dir: Path, tmp_path: Path) -> None:
    config = sweep_dir / "tiny.ini"
    config.write_text(config.read_text().replace("width = {2-3}", "width = {3-2}"))
    with pytest.raises(ConfigError, match=r"\{3-2\} runs backwards"):
        run(config, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_ctrl_c_marks_unfinished_runs_interrupted(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"

    def interrupt(event: Event) -> None:
        if event.kind == "finished":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(sweep_dir / "slow.ini", store, dask_client, on_event=interrupt)
    statuses = {r["run_id"]: r["status"] for r in rows(store, "runs")}
    assert len(statuses) == 8
    assert "interrupted" in statuses.values() and set(statuses.values()) <= {"done", "interrupted"}
    (sweep,) = rows(store, "sweeps", latest="sweep_id")
    assert sweep["ended"] is not None
    assert mosaic.status(store).of("interrupted")


def test_rerun_continues_from_checkpoints(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    assert run(sweep_dir / "tiny.ini", store, dask_client).exit_code == 0
    summary = rerun(sweep_dir / "tiny.ini", store, Selection(ids="1-2"), epochs=2, client=dask_client)

    assert summary.exit_code == 0 and summary.kind == "rerun" and sorted(r for r, *_ in summary.runs) == [1, 2]
    results = {r["run_id"]: r for r in rows(store, "results")}
    assert results[1]["epochs"] == 3 and results[1]["attempt"] == 1
    assert results[3]["epochs"] == 1 and results[3]["attempt"] == 0
    epochs = sorted(r["epoch"] for r in rows(store, "history", "run_id = 1 AND attempt = 1", latest=None))
    assert len(epochs) == 3
    kinds = [r["kind"] for r in rows(store, "sweeps", latest="sweep_id")]
    assert sorted(kinds) == ["rerun", "run"]


def test_plain_progress_prints_one_line_per_run() -> None:
    stream = io.StringIO()
    with console_progress(plain=True, stream=stream) as on_event:
        on_event(Event("cluster", total=2, text="local cluster tcp://127.0.0.1:1", link="http://127.0.0.1:8787/status"))
        on_event(Event("start", sweep_id=1, total=2, text="/tmp/store"))
        on_event(Event("finished", run_id=1, status="done", text="train_loss=1.000E-01"))
        on_event(Event("finished", run_id=2, status="error", text="RuntimeError: boom"))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "cluster: 2 workers, dashboard http://127.0.0.1:8787/status"
    assert "[run finished] 1 done 1/2" in lines[2] and "ETA" in lines[2]
    assert lines[3].endswith("RuntimeError: boom") and "2/2" in lines[3]
