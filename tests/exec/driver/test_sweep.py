"""One sweep's life on the cluster (mosaic.exec.driver.sweep), end to end on the session
LocalCluster: Ctrl-C marks the unfinished runs interrupted and ends the sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mosaic
from mosaic.exec.driver.commands import run
from mosaic.exec.wire.events import Event
from tests.helpers.stores import parquet_rows as rows


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
