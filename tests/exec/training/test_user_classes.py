"""The user's classes on a worker (mosaic.exec.training.user_classes): imported from their
files (cached by path and mtime), built with their section values converted by annotation."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from mosaic.exec.training import user_classes as runner
from mosaic.exec.training.run import execute_run
from tests.helpers import CLASSES_WORKER as CLASSES
from tests.helpers.training import make_task, section


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
