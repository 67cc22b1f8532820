"""Building one run on a worker (mosaic.exec.training.build): the data classes' chain, the run
info before the section values, the loss class, the device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mosaic.exec.training.run import execute_run
from tests.helpers import CLASSES_WORKER as CLASSES
from tests.helpers.training import make_task, section, signed_pipeline


def test_class_loss_function(tmp_path: Path, tutorial_dir: Path, tutorial_pipeline: list[dict]) -> None:
    mine = execute_run(make_task(
        tmp_path / "mine", tutorial_pipeline, config_dir=tutorial_dir, loss_function=None,
        class_loss_function="AbsLoss", path_to_class_loss_function=str(CLASSES),
    ))
    torch_l1 = execute_run(make_task(tmp_path / "l1", tutorial_pipeline, config_dir=tutorial_dir, loss_function="L1Loss"))
    mse = execute_run(make_task(tmp_path / "mse", tutorial_pipeline, config_dir=tutorial_dir))
    assert mine.status == "done", mine.error
    assert [r["train_loss"] for r in mine.history] == pytest.approx([r["train_loss"] for r in torch_l1.history], rel=1e-5)
    assert mine.history[0]["train_loss"] != pytest.approx(mse.history[0]["train_loss"], rel=1e-3)


def test_run_info_comes_before_section_values_and_data_classes_chain(tmp_path: Path) -> None:
    pipeline = [
        section("dataset", "dataset_classes", batch_size=8, data_size=40),
        section("scaling", "scale_inputs", factor="2.5", batch_size=999),
        # input_size in the section is overridden by the dataset's info()
        section("model", "linear", input_size=99),
    ]
    for process in ({}, {"data_scheme": "dataset, scaling"}, {"data_scheme": ["dataset", "scaling"]}):
        outcome = execute_run(make_task(tmp_path, pipeline, epochs=1, loss_function="CrossEntropyLoss", **process))
        assert outcome.status == "done", outcome.error
        assert outcome.results["nb_params"] == 12


def test_last_data_class_must_return_two_loaders(tmp_path: Path) -> None:
    pipeline = [section("dataset", "dataset_single"), section("model", "linear")]
    outcome = execute_run(make_task(tmp_path, pipeline))
    assert outcome.status == "error"
    assert "(train_loader, test_loader)" in outcome.error and "dataset_single" in outcome.error


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is missing")
def test_cuda_device_without_cuda(tmp_path: Path) -> None:
    task = make_task(tmp_path, signed_pipeline())
    task.device = "cuda:0"
    outcome = execute_run(task)
    assert outcome.status == "error"
    assert "CUDA is not available" in outcome.error
    assert outcome.device == "cuda:0"
