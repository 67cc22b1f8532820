"""Class files travel with the task: bundling on the driver, the worker's copy, imports from it."""

from __future__ import annotations

import pickle
import shutil
import sys
from pathlib import Path

import pytest

from mosaic.exec.training.run import PipelineError, execute_run
from mosaic.exec.training.user_classes import import_class
from mosaic.exec.wire import sources
from mosaic.exec.wire.sources import bundle_sources, locate, materialize
from tests.helpers.training import make_task, section

MODEL = """
from helper import WIDTH  # a sibling module that no section names

import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, WIDTH)

    def forward(self, x, run_info, module_info):
        return self.layer(x).sum(dim=1, keepdim=True)
"""
DATA = """
import torch
from torch.utils.data import DataLoader, TensorDataset


class Pairs:
    def prepare(self, data, run_info, module_info):
        x = torch.rand(16, 2)
        y = x.sum(dim=1, keepdim=True)
        return DataLoader(TensorDataset(x, y), batch_size=4), DataLoader(TensorDataset(x, y), batch_size=4)
"""
LOSS = """
import torch


class HalfMSE(torch.nn.Module):
    def forward(self, prediction, target):
        return 0.5 * torch.mean((prediction - target) ** 2)
"""


@pytest.fixture
def study(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "tiny.py").write_text(MODEL)
    (folder / "models" / "helper.py").write_text("WIDTH = 3\n")
    (folder / "data.py").write_text(DATA)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "loss.py").write_text(LOSS)
    return folder


@pytest.fixture(autouse=True)
def _own_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker copies under this test's tmp_path, and a fresh per-process cache."""
    monkeypatch.setattr(sources, "source_root", lambda: tmp_path / "copies")
    monkeypatch.setattr(sources, "_copies", {})


def test_bundle_holds_named_files_their_siblings_and_skips_missing_ones(study: Path, tmp_path: Path) -> None:
    loss = str(tmp_path / "elsewhere" / "loss.py")
    bundle = bundle_sources(["./models/tiny.py", "data.py", "models/tiny.py", loss, "nowhere.py", ""], study)
    arcnames = {f.arcname for f in bundle.files}
    assert {"models/tiny.py", "models/helper.py", "data.py"} <= arcnames
    outside = [a for a in arcnames if a.startswith("_outside/")]
    assert len(outside) == 1 and outside[0].endswith("/loss.py")
    assert dict(bundle.names).keys() == {"./models/tiny.py", "data.py", "models/tiny.py", loss}
    assert bundle.file_for("./models/tiny.py").data == MODEL.encode()
    assert bundle.file_for("nowhere.py") is None
    # the digest follows the content
    before = bundle.digest
    (study / "models" / "helper.py").write_text("WIDTH = 4\n")
    assert bundle_sources(["./models/tiny.py"], study).digest != before


def test_worker_uses_the_driver_file_when_it_sees_it_unchanged_else_its_copy(study: Path, tmp_path: Path) -> None:
    bundle = bundle_sources(["data.py"], study)
    assert locate(bundle, "data.py") == (study / "data.py").resolve()
    assert locate(bundle, "other.py") is None and locate(None, "data.py") is None
    (study / "data.py").write_text(DATA + "\n# edited after the sweep started\n")
    copy = locate(bundle, "data.py")
    assert copy == tmp_path / "copies" / bundle.digest / "data.py"
    assert copy.read_text() == DATA
    assert materialize(bundle) == copy.parent  # written once, reused
    assert [p.name for p in (tmp_path / "copies").iterdir()] == [bundle.digest]


def test_a_run_trains_from_the_bundle_once_the_study_folder_is_gone(study: Path, tmp_path: Path) -> None:
    """What a worker that cannot see the driver's disk does: import everything from the task."""
    loss = tmp_path / "elsewhere" / "loss.py"
    bundle = bundle_sources(["./data.py", "models/tiny.py", str(loss)], study)
    pipeline = [section("data", "Pairs", "./data.py"), section("model", "Tiny", "models/tiny.py")]
    task = make_task(
        tmp_path / "run_files", pipeline, config_dir=study, epochs=2,
        loss_function=None, class_loss_function="HalfMSE", path_to_class_loss_function=str(loss),
    )
    task.sources = bundle
    task = pickle.loads(pickle.dumps(task))  # as it travels to a worker
    shutil.rmtree(study)
    loss.unlink()

    with pytest.raises(PipelineError, match="class file 'models/tiny.py' not found"):
        import_class("models/tiny.py", "Tiny", str(study))  # without the bundle: today's failure
    outcome = execute_run(task)
    assert outcome.status == "done", outcome.error
    assert len(outcome.history) == 2
    cls = import_class("models/tiny.py", "Tiny", str(study), bundle)
    assert Path(sys.modules[cls.__module__].__file__).parent == tmp_path / "copies" / bundle.digest / "models"
