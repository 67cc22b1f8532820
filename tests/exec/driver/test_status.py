"""``mosaic status`` (mosaic.exec.driver.status) on a real sweep, rendered like the original's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mosaic.exec.driver.commands import run
from mosaic.exec.driver.status import status


def test_status_renders_like_the_original(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    run(sweep_dir / "tiny.ini", store, dask_client)
    lines = status(store).render().splitlines()
    assert lines[0] == "Done" and lines[1].startswith("\t[1] train_loss=")
    assert "\ttest_loss=" in lines[1] and "\texecution_time=" in lines[1]
    assert lines[5:8] == ["Error", "Running", "Pending"]
