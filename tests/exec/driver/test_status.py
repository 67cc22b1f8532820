"""``mosaic status`` (mosaic.exec.driver.status) on a real sweep, rendered like the original's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mosaic.exec.driver.commands import run
from mosaic.exec.driver.status import status
from mosaic.store.status import RunStatus
from tests.helpers.curves import FOUR_MODELS, curve_store, halving_store


def test_status_renders_like_the_original(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    run(sweep_dir / "tiny.ini", store, dask_client)
    lines = status(store).render().splitlines()
    assert lines[0] == "Done" and lines[1].startswith("\t[1] train_loss=")
    assert "\ttest_loss=" in lines[1] and "\texecution_time=" in lines[1]
    assert lines[5:8] == ["Error", "Running", "Pending"]


def test_status_lists_stopped_runs_and_what_the_search_saved(tmp_path: Path) -> None:
    # halving (factor 2, rungs 1, 2, 4, 8) over 4 pipelines: c and d stopped at epoch 1, b at epoch 2;
    # saved: 4 runs x 8 epochs + 2 x 7
    halving_store(tmp_path / "halving", FOUR_MODELS, reduction_factor=2)
    report = status(tmp_path / "halving")
    assert [r.run_id for r in report.of(RunStatus.STOPPED)] == [3, 4, 5, 6, 7, 8]
    assert report.stops == {5: 1, 6: 1, 7: 1, 8: 1, 3: 2, 4: 2}
    lines = report.render().splitlines()
    assert lines[:3] == ["Done", "\t[1] ", "\t[2] "] and lines[3:6] == ["Error", "Running", "Pending"]
    assert lines[6] == "Stopped" and lines[7].startswith("\t[3] ") and lines[7].endswith("  (at epoch 2)")
    assert lines[-2] == "Search: stopped 3 of 4 pipelines (2 at epoch 1, 1 at epoch 2), saving 46 of 72 planned epochs (63.9%)"
    assert lines[-1] == f"(8 runs in {tmp_path / 'halving'}: 2 done, 6 stopped)"
    # a full grid: no search line, no stopped section
    curve_store(tmp_path / "grid", FOUR_MODELS)
    text = status(tmp_path / "grid").render()
    assert "Search" not in text and "Stopped" not in text and text.endswith(": 8 done)")
