"""status, pause and resume on real sweeps, and the ``mosaic run`` command's exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import mosaic
from mosaic.errors import RunError, UsageError
from mosaic.exec.driver.commands import resume, run
from mosaic.exec.driver.pause import pause, read_sidecar
from mosaic.exec.driver.status import status
from mosaic.exec.wire.events import Event
from mosaic.store.layout import last_store
from mosaic.store.writer import Store

BIN = Path(sys.executable).parent


def test_pause_then_resume_runs_every_pipeline_once(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    paused_file = tmp_path / "left.json"
    outcome: dict[str, Any] = {}

    def pause_in_background(event: Event) -> None:
        if event.kind == "finished" and "thread" not in outcome:
            outcome["thread"] = threading.Thread(target=lambda: outcome.update(result=pause(store, paused_file, timeout=60)), daemon=True)
            outcome["thread"].start()

    first = run(sweep_dir / "slow.ini", store, dask_client, on_event=pause_in_background)
    outcome["thread"].join(timeout=60)
    result = outcome["result"]

    paused = [r for r, s in zip(range(1, 9), first.statuses, strict=True) if s == "paused"]
    assert paused and first.exit_code == 0 and first.paused_file == paused_file.resolve()
    assert result.sweep_id == first.sweep_id and result.paused == len(paused) and result.finished
    assert "mosaic resume" in result.render() and "mosaic resume" in first.render()
    assert len(mosaic.read_pipelines(paused_file)) == len(paused)
    side = read_sidecar(paused_file)
    assert [r["run_id"] for r in side["runs"]] == paused and Path(side["store"]) == store.resolve()
    assert {r.run_id for r in status(store).of("paused")} == set(paused)
    assert not list(Store(store).control_dir.glob("*.json")), "pause left control files behind"

    second = resume(paused_file, client=dask_client)
    assert second.kind == "resume" and second.exit_code == 0
    assert sorted(r for r, *_ in second.runs) == paused
    report = status(store)
    assert len(report.of("done")) == 8 and len(report.runs) == 8
    assert Store(store).next_run_id() == 9


def test_pause_needs_a_running_sweep_and_a_json_file(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    run(sweep_dir / "tiny.ini", store, dask_client)
    with pytest.raises(RunError, match="no sweep is running"):
        pause(store, tmp_path / "left.json")
    with pytest.raises(UsageError, match="must end in .json"):
        pause(store, tmp_path / "left.txt")
    # status and pause default to the store the last run used
    assert last_store() == store.resolve()
    assert status().store == store.resolve()


def test_resume_of_a_generated_file_needs_store_and_config(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    pipelines = tmp_path / "p.json"
    mosaic.write_pipelines(mosaic.generate(sweep_dir / "tiny.ini")[:2], pipelines)
    with pytest.raises(UsageError, match="--store"):
        resume(pipelines)
    summary = resume(pipelines, store=tmp_path / "store", config=sweep_dir / "tiny.ini", client=dask_client)
    assert summary.exit_code == 0 and sorted(r for r, *_ in summary.runs) == [1, 2]


def test_status_renders_like_the_original(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    run(sweep_dir / "tiny.ini", store, dask_client)
    lines = status(store).render().splitlines()
    assert lines[0] == "Done" and lines[1].startswith("\t[1] train_loss=")
    assert "\ttest_loss=" in lines[1] and "\texecution_time=" in lines[1]
    assert lines[5:8] == ["Error", "Running", "Pending"]


# -- the command line ---------------------------------------------------------------------------
def mosaic_cli(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN / "mosaic", *map(str, args)], capture_output=True, text=True, timeout=180, env=env)


def test_cli_run_exit_codes(sweep_dir: Path, tmp_path: Path) -> None:
    done = mosaic_cli("run", sweep_dir / "tiny.ini", tmp_path / "ok", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "4 done" in done.stdout and "best run per model" in done.stdout
    assert "[run finished]" in done.stderr
    assert len(status(tmp_path / "ok").of("done")) == 4

    failed = mosaic_cli("run", sweep_dir / "faulty.ini", tmp_path / "bad")
    assert failed.returncode == 1, failed.stderr
    assert [r.status for r in status(tmp_path / "bad").runs] == ["done", "done", "error", "system failure"]

    config = sweep_dir / "tiny.ini"
    config.write_text(config.read_text().replace("lr = 1e-2", "lr = fast"))
    refused = mosaic_cli("run", config, tmp_path / "never")
    assert refused.returncode == 2 and "'fast' is not a number" in refused.stderr
    assert refused.stderr.count("\n") == 1 and not (tmp_path / "never").exists()

    config.write_text(config.read_text().replace("lr = fast", "lr = 1e-2"))
    refused = mosaic_cli("run", config, tmp_path / "never", env={**os.environ, "MOSAIC_WORKER_START": "threads"})
    assert refused.returncode == 2 and "MOSAIC_WORKER_START='threads'" in refused.stderr
    assert refused.stderr.count("\n") == 1 and not (tmp_path / "never").exists()


def test_cli_ctrl_c_leaves_a_readable_store(sweep_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = sweep_dir / "slow.ini"
    config.write_text(config.read_text().replace("epochs = 8", "epochs = 40"))
    # SIGINT back to its default in the child: started from a background job of a non-interactive
    # shell (`make test &`, CI), pytest inherits SIGINT *ignored*, Python then never installs its
    # KeyboardInterrupt handler and the child would finish its sweep as if nothing happened
    process = subprocess.Popen(
        [BIN / "mosaic", "run", config, store, "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(r.status == "running" for r in _runs_or_nothing(store)):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    report = status(store)
    assert report.of("interrupted") and not report.of("running", "pending")
    assert "Interrupted" in report.render()
    with mosaic.open_store(store) as session:
        assert session.fetch("SELECT ended IS NOT NULL FROM sweeps") == [(True,)]
    assert not os.listdir(Store(store).control_dir)


def _runs_or_nothing(store: Path) -> list[Any]:
    if not (store / "runs").exists():
        return []
    try:
        return list(status(store).runs)
    except Exception:  # noqa: BLE001 - the first files may be being written
        return []


def test_pause_file_is_legacy_json(sweep_dir: Path, tmp_path: Path) -> None:
    from mosaic.config import load_config
    from mosaic.exec.driver.pause import write_pause_file

    config = load_config(sweep_dir / "tiny.ini")
    pipelines = mosaic.generate(config)[:1]
    target = write_pause_file(tmp_path / "p.json", pipelines, store=tmp_path, sweep_id=3, config=config, runs=[{"run_id": 5}])
    assert json.loads(target.read_text()) == pipelines
    assert read_sidecar(target)["sweep_id"] == 3
