"""The worker side of one run: execute_run with real torch, tiny models, files under tmp_path."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from mosaic.exec.training.run import RunTask, execute_run, run_seed
from tests.helpers import CLASSES_WORKER as CLASSES
from tests.helpers.training import losses, make_task, section, signed_pipeline

RESULT_KEYS = {
    "train_loss", "test_loss", "train_acc", "test_acc", "nb_params", "duration_s", "epochs",
    "overfit", "trainability", "slope", "slope_std_plus", "slope_std_minus",
}
HISTORY_KEYS = {"epoch", "train_loss", "test_loss", "train_acc", "test_acc", "seconds"}


def test_tutorial_pipeline(tmp_path: Path, tutorial_dir: Path, tutorial_pipeline: list[dict]) -> None:
    run_files = tmp_path / "run_files"  # created by the run
    outcome = execute_run(make_task(run_files, tutorial_pipeline, run_id=5, config_dir=tutorial_dir, legacy_history=True))
    assert outcome.status == "done", outcome.error
    assert outcome.error is None
    assert (outcome.run_id, outcome.attempt, outcome.device, outcome.stopped_early) == (5, 0, "cpu", False)
    assert outcome.seed == run_seed(7, 5)
    assert outcome.worker.endswith(f":{os.getpid()}")
    assert [r["epoch"] for r in outcome.history] == [1, 2]
    assert all(set(r) == HISTORY_KEYS for r in outcome.history)
    assert set(outcome.results) == RESULT_KEYS
    results = outcome.results
    assert results["epochs"] == 2
    assert results["train_loss"] == outcome.history[-1]["train_loss"]
    assert 0.0 <= results["test_acc"] <= 100.0  # auto -> threshold: 0/1 targets, one output
    assert results["duration_s"] > 0
    assert results["slope"] is not None and results["trainability"] is not None
    # files: log, checkpoint, save_model output (section index 1), legacy history
    assert "=== run 5 attempt 0" in (run_files / "output_5.log").read_text()
    assert (run_files / "checkpoint_5.pt").is_file()
    assert (run_files / "model_5_1.pt").is_file()
    legacy = torch.load(run_files / "history_5.pt")
    assert set(legacy) == {"train_loss", "test_loss", "train_acc", "test_acc"}
    assert legacy["test_loss"] == [r["test_loss"] for r in outcome.history]


def test_the_legacy_history_file_is_written_only_when_asked(tmp_path: Path) -> None:
    """By default a run writes its log, checkpoint and save_model files, not the original's
    history_<id>.pt (the store holds the history; export --history-dir writes the files)."""
    outcome = execute_run(make_task(tmp_path, signed_pipeline(), epochs=1))
    assert outcome.status == "done", outcome.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1.pt", "output_1.log"]
    asked = execute_run(make_task(tmp_path, signed_pipeline(), run_id=2, epochs=1, legacy_history=True))
    assert torch.load(tmp_path / "history_2.pt")["test_loss"] == [r["test_loss"] for r in asked.history]


def test_tutorial_nb_params(tmp_path: Path, tutorial_dir: Path, tutorial_pipeline: list[dict]) -> None:
    # mlp_funnel length 4, width 2: 2 -> 8 -> 6 -> 4 -> 2 -> 1
    assert tutorial_pipeline[1]["class"] == "mlp_funnel" and tutorial_pipeline[1]["width"] == 2
    outcome = execute_run(make_task(tmp_path, tutorial_pipeline, epochs=1, config_dir=tutorial_dir))
    sizes = [2, 8, 6, 4, 2, 1]
    assert outcome.results["nb_params"] == sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))


def test_same_seed_same_history_and_replicates_differ(tmp_path: Path) -> None:
    first = execute_run(make_task(tmp_path / "a", signed_pipeline(), run_id=3))
    again = execute_run(make_task(tmp_path / "b", signed_pipeline(), run_id=3))
    replicate = execute_run(make_task(tmp_path / "c", signed_pipeline(), run_id=4))
    assert first.status == again.status == replicate.status == "done"
    assert losses(first.history) == losses(again.history)
    assert first.seed == again.seed != replicate.seed
    assert losses(first.history) != losses(replicate.history)


@pytest.mark.parametrize("pipeline_name", ["tutorial", "signed", "plain_object"])
def test_resume_continues_exactly(tmp_path: Path, tutorial_dir: Path, tutorial_pipeline: list[dict], pipeline_name: str) -> None:
    # tutorial: save_model/load_model; signed: shuffling + dropout (RNG states); plain_object:
    # a model that is no nn.Module, only parameters()
    kwargs: dict[str, Any] = {"config_dir": tutorial_dir} if pipeline_name == "tutorial" else {}
    pipeline = tutorial_pipeline if pipeline_name == "tutorial" else signed_pipeline()
    if pipeline_name == "plain_object":
        pipeline = [section("dataset", "dataset_classes", batch_size=8, data_size=40), section("model", "linear")]
        kwargs["loss_function"] = "CrossEntropyLoss"
    whole = execute_run(make_task(tmp_path / "whole", pipeline, epochs=3, **kwargs))
    part = execute_run(make_task(tmp_path / "part", pipeline, epochs=1, **kwargs))
    rest = execute_run(make_task(tmp_path / "part", pipeline, epochs=2, resume=True, attempt=1, legacy_history=True, **kwargs))
    assert whole.status == part.status == rest.status == "done", rest.error
    assert len(part.history) == 1
    assert losses(rest.history) == losses(whole.history)
    assert rest.results["epochs"] == 3
    assert rest.results["train_loss"] == whole.results["train_loss"]
    assert rest.results["slope"] == whole.results["slope"]
    assert rest.results["duration_s"] >= part.results["duration_s"]
    assert torch.load(tmp_path / "part" / "history_1.pt")["train_loss"] == [r["train_loss"] for r in whole.history]
    log = (tmp_path / "part" / "output_1.log").read_text()
    assert "attempt 0" in log and "attempt 1" in log  # appended, not overwritten


def test_resume_without_checkpoint_trains_from_scratch(tmp_path: Path) -> None:
    outcome = execute_run(make_task(tmp_path, signed_pipeline(), epochs=2, resume=True, attempt=1))
    assert outcome.status == "done"
    assert len(outcome.history) == 2
    assert "no checkpoint" in outcome.message


def test_user_exception_fails_the_run_with_traceback(tmp_path: Path) -> None:
    pipeline = [section("dataset", "dataset_signed", batch_size=8, data_size=40), section("model", "mlp_raises")]
    outcome = execute_run(make_task(tmp_path, pipeline))
    assert outcome.status == "error"
    assert outcome.results is None
    assert "Traceback" in outcome.error
    assert "ValueError: deliberate failure in forward" in outcome.error
    assert "classes.py" in outcome.error  # the user's frame is in it
    assert outcome.message == "ValueError: deliberate failure in forward"
    assert "deliberate failure" in (tmp_path / "output_1.log").read_text()
    assert not (tmp_path / "checkpoint_1.pt").exists()


def test_system_exit_in_user_code_is_a_run_error(tmp_path: Path) -> None:
    pipeline = [section("dataset", "dataset_signed", batch_size=8, data_size=40), section("model", "mlp_exits")]
    outcome = execute_run(make_task(tmp_path, pipeline))
    assert outcome.status == "error"
    assert "SystemExit" in outcome.error


def test_nan_loss_names_the_epoch(tmp_path: Path) -> None:
    pipeline = [section("dataset", "dataset_signed", batch_size=8, data_size=40), section("model", "mlp_nan")]
    outcome = execute_run(make_task(tmp_path, pipeline, epochs=5, checkpoint_every=1))
    assert outcome.status == "error"
    assert "loss is nan at epoch 3" in outcome.error
    assert [r["epoch"] for r in outcome.history] == [1, 2, 3]
    assert math.isnan(outcome.history[-1]["train_loss"])
    # the last good periodic checkpoint is kept
    saved = torch.load(tmp_path / "checkpoint_1.pt", weights_only=True)
    assert saved["epoch"] == 2


def test_huge_learning_rate_is_caught(tmp_path: Path) -> None:
    pipeline = [section("dataset", "dataset_signed", batch_size=8, data_size=40), section("model", "linear")]
    outcome = execute_run(make_task(tmp_path, pipeline, epochs=30, lr=1e30, optimizer="SGD"))
    assert outcome.status == "error"
    assert "at epoch" in outcome.error and ("nan" in outcome.error or "inf" in outcome.error)


def test_patience_stops_early(tmp_path: Path) -> None:
    # lr = 0: the test loss never improves after epoch 1, so patience 2 stops at epoch 3
    outcome = execute_run(make_task(tmp_path, signed_pipeline(), epochs=10, lr=0.0, patience=2))
    assert outcome.status == "done"
    assert outcome.stopped_early
    assert len(outcome.history) == 3
    assert outcome.results["epochs"] == 3
    assert "early stop at epoch 3" in outcome.message
    assert torch.load(tmp_path / "checkpoint_1.pt", weights_only=True)["epoch"] == 3


def test_user_output_goes_to_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = [section("dataset", "dataset_signed", batch_size=8, data_size=40), section("model", "mlp_prints")]
    outcome = execute_run(make_task(tmp_path, pipeline, epochs=1))
    assert outcome.status == "done"
    assert "hello from forward" in (tmp_path / "output_1.log").read_text()
    assert "hello" not in capsys.readouterr().out


def test_module_level_code_does_not_shift_the_seed(tmp_path: Path) -> None:
    # the first run in a process executes the class file's top level, later ones hit the cache
    source = tmp_path / "noisy.py"
    source.write_text(CLASSES.read_text() + "\n_NOISE = torch.rand(1000)\n")
    pipeline = [
        section("dataset", "dataset_signed", source, batch_size=8, data_size=40),
        section("model", "mlp_dropout", source),
    ]
    first = execute_run(make_task(tmp_path / "a", pipeline))
    second = execute_run(make_task(tmp_path / "b", pipeline))
    assert first.status == "done", first.error
    assert losses(first.history) == losses(second.history)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_and_resume(tmp_path: Path) -> None:
    def cuda_task(folder: str, epochs: int, resume: bool = False) -> RunTask:
        task = make_task(tmp_path / folder, signed_pipeline(), epochs=epochs, resume=resume)
        task.device = "cuda"
        return task

    whole = execute_run(cuda_task("whole", 3))
    execute_run(cuda_task("part", 1))
    rest = execute_run(cuda_task("part", 2, resume=True))
    assert whole.status == rest.status == "done", whole.error or rest.error
    assert whole.device == "cuda"
    assert losses(rest.history) == losses(whole.history)
