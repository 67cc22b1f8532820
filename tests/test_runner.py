"""The worker side of one run: execute_run with real torch, tiny models, files under tmp_path."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from mosaic.exec.training import user_classes as runner
from mosaic.exec.training.run import RunTask, execute_run, run_seed
from mosaic.sweep import generate

CLASSES = Path(__file__).parent / "data" / "classes_worker" / "classes.py"
RESULT_KEYS = {
    "train_loss", "test_loss", "train_acc", "test_acc", "nb_params", "duration_s", "epochs",
    "overfit", "trainability", "slope", "slope_std_plus", "slope_std_minus",
}
HISTORY_KEYS = {"epoch", "train_loss", "test_loss", "train_acc", "test_acc", "seconds"}


def section(type_: str, class_name: str, path: Path | str = CLASSES, **params: Any) -> dict[str, Any]:
    return {"type": type_, "class": class_name, "path_to_class": str(path), **params}


def make_task(run_files: Path, pipeline: list[dict], *, run_id: int = 1, epochs: int = 2,
              config_dir: Path | None = None, resume: bool = False, attempt: int = 0, legacy_history: bool = False,
              **process: Any) -> RunTask:
    settings = {
        "lr": 1e-2, "epochs": epochs, "loss_function": "MSELoss", "class_loss_function": None,
        "path_to_class_loss_function": None, "optimizer": "Adam", "seed": 7, "accuracy": "auto",
        "checkpoint_every": None, "patience": None,
    }
    settings.update(process)
    return RunTask(
        run_id=run_id, attempt=attempt, sweep_id=1, pipeline=pipeline, process=settings,
        config_dir=str(config_dir or CLASSES.parent), run_files=str(run_files), epochs=epochs, resume=resume,
        legacy_history=legacy_history,
    )


def signed_pipeline() -> list[dict]:
    return [
        section("dataset", "dataset_signed", batch_size=8, data_size=40),
        section("model", "mlp_dropout", width="6"),
    ]


def losses(history: list[dict]) -> list[tuple]:
    return [(r["epoch"], r["train_loss"], r["test_loss"], r["train_acc"], r["test_acc"]) for r in history]


@pytest.fixture
def tutorial_pipeline(tutorial_dir: Path) -> list[dict]:
    config = tutorial_dir / "config.ini"
    text = config.read_text().replace("data_size = 200", "data_size = 40").replace("batch_size = 1", "batch_size = 4")
    config.write_text(text)
    return generate(config)[0]


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


def test_run_seed() -> None:
    assert run_seed(1, 2) == run_seed(1, 2)
    assert len({run_seed(1, run_id) for run_id in range(1, 200)}) == 199
    assert run_seed(1, 2) != run_seed(2, 2)
    assert run_seed(None, 2) == run_seed(None, 2)
    assert all(0 <= run_seed(s, r) < 2**31 for s in (None, 0, 99) for r in (1, 10**9))


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


def test_missing_constructor_parameter(tmp_path: Path) -> None:
    pipeline = [section("dataset", "dataset_signed", batch_size=8, data_size=40), section("model", "mlp_needs_depth")]
    outcome = execute_run(make_task(tmp_path, pipeline))
    assert outcome.status == "error"
    assert "mlp_needs_depth" in outcome.error
    assert "missing constructor parameter 'depth'" in outcome.error
    assert "Traceback" not in outcome.error


def test_missing_class_file_and_class(tmp_path: Path) -> None:
    pipeline = [section("dataset", "dataset_signed", path="nowhere.py"), section("model", "mlp_dropout")]
    outcome = execute_run(make_task(tmp_path, pipeline))
    assert outcome.status == "error"
    assert "nowhere.py" in outcome.error and "not found" in outcome.error
    pipeline = [section("dataset", "dataset_nope"), section("model", "mlp_dropout")]
    outcome = execute_run(make_task(tmp_path, pipeline))
    assert "class 'dataset_nope' is not defined" in outcome.error
    assert "dataset_signed" in outcome.error  # lists what is there


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


def test_accuracy_argmax_for_class_indices(tmp_path: Path) -> None:
    pipeline = [section("dataset", "dataset_classes", batch_size=8, data_size=40), section("model", "linear")]
    outcome = execute_run(make_task(tmp_path, pipeline, epochs=3, lr=0.1, loss_function="CrossEntropyLoss"))
    assert outcome.status == "done", outcome.error
    accs = [r["test_acc"] for r in outcome.history]
    assert all(a is not None and 0 <= a <= 100 for a in accs)
    assert all(a * 8 / 100 == round(a * 8 / 100) for a in accs)  # one test batch of 8
    assert outcome.results["nb_params"] == 3 * 3 + 3  # linear is not an nn.Module, still trained


@pytest.mark.parametrize(("rule", "has_accuracy"), [("auto", False), ("none", False), ("sign", True)])
def test_accuracy_rules_on_regression(tmp_path: Path, rule: str, has_accuracy: bool) -> None:
    outcome = execute_run(make_task(tmp_path, signed_pipeline(), accuracy=rule, legacy_history=True))
    assert outcome.status == "done", outcome.error
    assert all((r["train_acc"] is not None) is has_accuracy for r in outcome.history)
    assert (outcome.results["test_acc"] is not None) is has_accuracy
    legacy = torch.load(tmp_path / "history_1.pt")
    assert math.isnan(legacy["train_acc"][0]) is (not has_accuracy)


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


def test_annotations_convert_section_values(tmp_path: Path) -> None:
    module = sys.modules[runner.import_class(str(CLASSES), "typed_mlp").__module__]
    module.CONSTRUCTED.clear()
    pipeline = [
        section("dataset", "dataset_signed", batch_size=8, data_size=40),
        section("model", "typed_mlp", width="3", scale="0.5", bias="false", tag=5, key="typed"),
    ]
    outcome = execute_run(make_task(tmp_path, pipeline, epochs=1))
    assert outcome.status == "done", outcome.error
    assert module.CONSTRUCTED == [{"width": 3, "scale": 0.5, "bias": False, "tag": "5"}]
    assert outcome.results["nb_params"] == 2  # Linear(2, 1) without bias
    pipeline[1]["width"] = "three"
    outcome = execute_run(make_task(tmp_path, pipeline, epochs=1))
    assert outcome.status == "error"
    assert "'width' is annotated int but its value is 'three'" in outcome.error


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


def test_user_output_goes_to_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = [section("dataset", "dataset_signed", batch_size=8, data_size=40), section("model", "mlp_prints")]
    outcome = execute_run(make_task(tmp_path, pipeline, epochs=1))
    assert outcome.status == "done"
    assert "hello from forward" in (tmp_path / "output_1.log").read_text()
    assert "hello" not in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is missing")
def test_cuda_device_without_cuda(tmp_path: Path) -> None:
    task = make_task(tmp_path, signed_pipeline())
    task.device = "cuda:0"
    outcome = execute_run(task)
    assert outcome.status == "error"
    assert "CUDA is not available" in outcome.error
    assert outcome.device == "cuda:0"


def test_device_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSAIC_DEVICE", "cpu:0")
    outcome = execute_run(make_task(tmp_path, signed_pipeline(), epochs=1))
    assert outcome.device == "cpu:0"
    assert outcome.status == "done", outcome.error


def test_import_cache_by_path_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "configs" / "models.py"
    source.parent.mkdir()
    source.write_text("class Model:\n    version = 1\n")
    first = runner.import_class("models.py", "Model", source.parent)
    assert runner.import_class(str(source), "Model") is first  # same file, same mtime: cached
    source.write_text("class Model:\n    version = 2\n")
    later = time.time() + 5
    os.utime(source, (later, later))
    second = runner.import_class("models.py", "Model", source.parent)
    assert second is not first and second.version == 2
    # relative paths: the config's folder first, then the current directory
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.py").write_text("class Model:\n    version = 'cwd'\n")
    assert runner.import_class("models.py", "Model", source.parent).version == 2
    assert runner.import_class("models.py", "Model", tmp_path / "elsewhere").version == "cwd"


def test_coerce() -> None:
    assert runner.coerce("4", int, "w", "n") == 4
    assert runner.coerce("4.0", int, "w", "n") == 4
    assert runner.coerce("-2", "int", "w", "n") == -2
    assert runner.coerce("1e-3", "float", "w", "n") == 0.001
    assert runner.coerce(3, float, "w", "n") == 3.0 and isinstance(runner.coerce(3, float, "w", "n"), float)
    assert runner.coerce("True", bool, "w", "n") is True
    assert runner.coerce("off", "bool | None", "w", "n") is False
    assert runner.coerce(7, "Optional[str]", "w", "n") == "7"
    assert runner.coerce("x", "list[int]", "w", "n") == "x"  # not a scalar annotation: untouched
    assert runner.coerce([1], int, "w", "n") == [1]  # not a scalar value: untouched
    with pytest.raises(runner.PipelineError, match="annotated int"):
        runner.coerce("2.5", int, "w", "n")
    with pytest.raises(runner.PipelineError, match="annotated bool"):
        runner.coerce("maybe", bool, "w", "n")


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


def test_task_and_outcome_pickle(tmp_path: Path) -> None:
    import pickle

    task = make_task(tmp_path, signed_pipeline(), epochs=1)
    outcome = execute_run(pickle.loads(pickle.dumps(task)))
    assert pickle.loads(pickle.dumps(outcome)) == outcome


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
