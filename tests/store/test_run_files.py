"""A sweep's run files on the driver's side (mosaic.store.run_files): what comes back from a
worker is written (logs appended, nothing outside the folder), legacy history files."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from mosaic.store import run_files


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
