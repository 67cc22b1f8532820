"""Run files without a shared disk: the three ways a worker reaches them (mosaic.exec.wire.transfer)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from mosaic.exec.driver.commands import rerun, run
from mosaic.exec.wire import transfer
from mosaic.store import run_files
from mosaic.store.reader import open_reader
from mosaic.store.selection import Selection


def test_driver_writes_what_comes_back_appending_logs(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "output_3.log").write_bytes(b"attempt 0\n")
    written = run_files.receive(folder, {"output_3.log": b"attempt 1\n", "checkpoint_3.pt": b"ckpt",
                                         "../escape.pt": b"x", ".mosaic-run-files": b"forged"})
    assert sorted(p.name for p in written) == ["checkpoint_3.pt", "output_3.log"]
    assert (folder / "output_3.log").read_bytes() == b"attempt 0\nattempt 1\n"
    assert not (tmp_path / "escape.pt").exists() and not (folder / ".mosaic-run-files").exists()


def test_legacy_history_file(tmp_path: Path) -> None:
    history = [
        {"epoch": 1, "train_loss": 0.5, "test_loss": 0.6, "train_acc": 50.0, "test_acc": None, "seconds": 0.1},
        {"epoch": 2, "train_loss": 0.4, "test_loss": 0.5, "train_acc": 75.0, "test_acc": None, "seconds": 0.1},
    ]
    data = torch.load(run_files.write_history(tmp_path / "history_2.pt", history))
    assert data["train_loss"] == [0.5, 0.4] and data["test_loss"] == [0.6, 0.5]
    assert data["train_acc"] == [50.0, 75.0]
    assert all(math.isnan(v) for v in data["test_acc"])


def test_a_worker_that_does_not_see_the_folder_sends_the_files_back(tmp_path: Path) -> None:
    spec = transfer.plan(str(tmp_path / "runs"))
    (tmp_path / "runs" / "checkpoint_5.pt").write_bytes(b"saved")
    # the driver's own process sees its folder: files are written in place
    returned: dict[str, bytes] = {}
    with transfer.workspace(spec, spec.target, 5, True, returned) as folder:
        assert folder == tmp_path / "runs"
    assert returned == {}
    # another machine: a folder of its own, with the checkpoint sent along; every file comes back
    elsewhere = transfer.RunFiles(spec.target, "another-token")
    task = transfer.for_task(elsewhere, 5, resume=True, send=True)
    assert task.carry == {"checkpoint_5.pt": b"saved"}
    with transfer.workspace(task, task.target, 5, True, returned) as folder:
        assert folder != tmp_path / "runs" and (folder / "checkpoint_5.pt").read_bytes() == b"saved"
        (folder / "checkpoint_5.pt").write_bytes(b"trained on")
        (folder / "output_5.log").write_text("log\n")
    assert returned == {"checkpoint_5.pt": b"trained on", "output_5.log": b"log\n"}
    assert not folder.exists()
    assert transfer.for_task(elsewhere, 5, resume=False, send=True).carry == {}
    assert transfer.for_task(elsewhere, 6, resume=True, send=True).carry == {}  # no checkpoint yet


def test_a_url_run_files_path_is_written_by_the_workers(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    """run_files_path = file://...: workers upload there (fsspec) and fetch the checkpoint to rerun."""
    remote = tmp_path / "bucket" / "runs"
    config = sweep_dir / "tiny.ini"
    config.write_text(config.read_text().replace("run_files_path = run_files", f"run_files_path = file://{remote}"))
    store = tmp_path / "store"
    assert run(config, store, client=dask_client).exit_code == 0
    assert sorted(p.name for p in remote.glob("checkpoint_*.pt")) == [f"checkpoint_{i}.pt" for i in (1, 2, 3, 4)]
    assert not (sweep_dir / "run_files").exists() and not (store / "run_files").exists()
    summary = rerun(config, store, Selection(ids="1"), epochs=2, client=dask_client)
    assert summary.exit_code == 0 and summary.run_files == f"file://{remote}"
    with open_reader(store) as reader:
        epochs = {row["run_id"]: row["epochs"] for row in reader.results().to_pylist() if row["run_id"] == 1}
    assert epochs == {1: 3}
    log = (remote / "output_1.log").read_text()
    assert "=== run 1 done: 1 epochs" in log and "=== run 1 done: 3 epochs" in log
