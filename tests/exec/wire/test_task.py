"""What the driver sends to a worker and gets back (mosaic.exec.wire.task): run seeds, the
device a task runs on, task and outcome pickled as they travel."""

from __future__ import annotations

from pathlib import Path

import pytest

from mosaic.exec.training.run import execute_run
from mosaic.exec.wire.task import run_seed
from tests.helpers.training import make_task, signed_pipeline


def test_run_seed() -> None:
    assert run_seed(1, 2) == run_seed(1, 2)
    assert len({run_seed(1, run_id) for run_id in range(1, 200)}) == 199
    assert run_seed(1, 2) != run_seed(2, 2)
    assert run_seed(None, 2) == run_seed(None, 2)
    assert all(0 <= run_seed(s, r) < 2**31 for s in (None, 0, 99) for r in (1, 10**9))


def test_device_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSAIC_DEVICE", "cpu:0")
    outcome = execute_run(make_task(tmp_path, signed_pipeline(), epochs=1))
    assert outcome.device == "cpu:0"
    assert outcome.status == "done", outcome.error


def test_task_and_outcome_pickle(tmp_path: Path) -> None:
    import pickle

    task = make_task(tmp_path, signed_pipeline(), epochs=1)
    outcome = execute_run(pickle.loads(pickle.dumps(task)))
    assert pickle.loads(pickle.dumps(outcome)) == outcome
