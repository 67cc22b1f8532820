"""Short runs share Dask tasks (mosaic.exec.driver.batching) and record exactly what they record alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mosaic
from mosaic.errors import ConfigError
from mosaic.exec.driver.batching import MAX_BATCH, BatchSizer
from mosaic.exec.driver.commands import run
from mosaic.exec.wire.events import Event


def test_sizes_start_at_one_then_fill_about_a_second() -> None:
    sizer = BatchSizer(2, target_s=1.0)
    assert sizer.size(1000) == 1  # nothing measured yet
    sizer.record([0.05])
    assert sizer.size(1000) == 1  # one run per worker measured first
    sizer.record([0.05])
    assert sizer.size(1000) == 20  # 1 s of 50 ms runs
    assert sizer.size(40) == 10  # never more than a quarter of what is left with 2 workers
    assert sizer.size(3) == 1
    for _ in range(30):  # the estimate follows the latest tasks
        sizer.record([0.0001] * 10)
    assert sizer.size(10**6) == MAX_BATCH
    sizer.record([30.0])  # long runs go alone again
    assert sizer.size(1000) == 1


def test_a_fixed_size_from_the_config() -> None:
    sizer = BatchSizer(2, fixed=3)
    assert [sizer.size(q) for q in (10, 3, 2)] == [3, 3, 2]


def _config(folder: Path, runs_per_task: str) -> Path:
    text = (folder / "tiny.ini").read_text().replace("multiplicity = 1", f"multiplicity = 3\nruns_per_task = {runs_per_task}")
    path = folder / f"batch_{runs_per_task}.ini"
    path.write_text(text)
    return path


def _losses(store: Path) -> dict[tuple[int, int], tuple[float, float]]:
    with mosaic.open_store(store) as session:
        rows = session.fetch("SELECT run_id, epoch, train_loss, test_loss FROM history")
    return {(r, e): (a, b) for r, e, a, b in rows}


def test_runs_in_batches_record_what_they_record_alone(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    alone = run(_config(sweep_dir, "1"), tmp_path / "alone", dask_client)
    events: list[Event] = []
    batched = run(_config(sweep_dir, "5"), tmp_path / "batched", dask_client, on_event=events.append)
    assert alone.counts == batched.counts == {"done": 12}
    assert (alone.tasks, batched.tasks) == (12, 3)  # 5 + 5 + 2
    assert "(3 Dask tasks)" in batched.render()
    got, expected = _losses(tmp_path / "batched"), _losses(tmp_path / "alone")
    assert len(got) == 12 and got == expected  # same seeds, same losses, bit for bit
    # every run of a batch still says when it starts, on which worker
    running = [e for e in events if e.kind == "running"]
    assert sorted(e.run_id for e in running) == list(range(1, 13)) and all(e.worker for e in running)


@pytest.mark.parametrize("value", ["0", "many"])
def test_runs_per_task_must_be_auto_or_a_whole_number(sweep_dir: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[MONITOR\] runs_per_task"):
        mosaic.load_config(_config(sweep_dir, value))

