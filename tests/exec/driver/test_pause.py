"""Pausing a sweep from outside its driver (mosaic.exec.driver.pause): `mosaic pause` on a real
sweep, then `mosaic resume` of what it left; the pause file is the original's JSON."""

from __future__ import annotations

import json
import threading
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


# -- the command line ---------------------------------------------------------------------------


def test_pause_file_is_legacy_json(sweep_dir: Path, tmp_path: Path) -> None:
    from mosaic.config import load_config
    from mosaic.exec.driver.pause import write_pause_file

    config = load_config(sweep_dir / "tiny.ini")
    pipelines = mosaic.generate(config)[:1]
    target = write_pause_file(tmp_path / "p.json", pipelines, store=tmp_path, sweep_id=3, config=config, runs=[{"run_id": 5}])
    assert json.loads(target.read_text()) == pipelines
    assert read_sidecar(target)["sweep_id"] == 3
