"""Config validation: every bad input is one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mosaic
from mosaic.cli import main


def _edit(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new, 1))


def _fails(capsys: pytest.CaptureFixture[str], config: Path, *expected: str) -> str:
    out = config.parent / "out.json"
    rc = main(["generate", str(config), str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert not out.exists(), "nothing may be written on bad input"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for piece in expected:
        assert piece in lines[0], f"{piece!r} not in {lines[0]!r}"
    return lines[0]


def test_good_config_loads(tutorial_dir: Path) -> None:
    config = mosaic.load_config(tutorial_dir / "config.ini")
    assert config.process.epochs == 50 and config.process.lr == 1e-2
    assert config.process.optimizer == "Adam" and config.process.accuracy == "auto"
    assert config.monitor.gpu_available == () and config.monitor.cache_size == 500 * 1024**2
    assert [s.name for s in config.sections] == ["dataset_OR", "mlp_funnel", "mlp_brick"]
    assert config.sections[1].resolved_path == (tutorial_dir / "mlp.py").resolve()
    with pytest.raises(AttributeError):
        config.process.epochs = 3  # type: ignore[misc]


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _fails(capsys, tmp_path / "nope.ini", "nope.ini", "not found")


def test_not_an_ini(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "c.ini"
    config.write_text("hello world\n[PROCESS]\n")
    _fails(capsys, config, "c.ini", "line 1", "'hello world'")


def test_garbage_line_inside_section(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "epochs = 50", "epochs = 50\nthis is not a key value line")
    _fails(capsys, config, "line", "this is not a key value line")


@pytest.mark.parametrize("section", ["PROCESS", "MONITOR"])
def test_missing_section(capsys: pytest.CaptureFixture[str], tutorial_dir: Path, section: str) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, f"[{section}]", "[renamed]")
    _fails(capsys, config, f"no [{section}] section")


@pytest.mark.parametrize(
    ("section", "key"),
    [("PROCESS", k) for k in ("lr", "epochs", "data_scheme", "pipeline_scheme")]
    + [("MONITOR", k) for k in ("need_gpu", "gpu_available", "nb_processus", "multiplicity")],
)
def test_missing_required_key(capsys: pytest.CaptureFixture[str], tutorial_dir: Path, section: str, key: str) -> None:
    config = tutorial_dir / "config.ini"
    text = config.read_text()
    config.write_text(re.sub(rf"^{key} = .*\n", "", text, count=1, flags=re.M))
    _fails(capsys, config, f"[{section}] {key}: missing")


@pytest.mark.parametrize(
    ("line", "bad", "expected"),
    [
        ("epochs = 50", "epochs = ten", "'ten' is not an integer"),
        ("epochs = 50", "epochs = 0", "below 1"),
        ("lr = 1e-2", "lr = fast", "'fast' is not a number"),
        ("lr = 1e-2", "lr = 0", "greater than 0"),
        ("lr = 1e-2", "lr = -1", "greater than 0"),
        ("multiplicity = 4", "multiplicity = 0", "below 1"),
        ("multiplicity = 4", "multiplicity = 2.5", "'2.5' is not an integer"),
        ("nb_processus = 2", "nb_processus = -3", "below 1"),
        ("nb_processus = 2", "nb_processus = two", "'two' is not an integer"),
    ],
)
def test_bad_numbers(capsys: pytest.CaptureFixture[str], tutorial_dir: Path, line: str, bad: str, expected: str) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, line, bad)
    _fails(capsys, config, bad.split(" = ")[0] + ":", expected)


def test_scheme_type_without_section(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "pipeline_scheme = mlp", "pipeline_scheme = mlp, cnn")
    _fails(capsys, config, "[PROCESS] pipeline_scheme", "'cnn' has no section", "type = cnn")


@pytest.mark.parametrize("key", ["type", "class", "path_to_class"])
def test_class_section_missing_key(capsys: pytest.CaptureFixture[str], tutorial_dir: Path, key: str) -> None:
    config = tutorial_dir / "config.ini"
    text = config.read_text()
    head, tail = text.split("[mlp_brick]")
    config.write_text(head + "[mlp_brick]" + re.sub(rf"^{key} = .*\n", "", tail, count=1, flags=re.M))
    _fails(capsys, config, f"[mlp_brick] {key}: missing")


def test_path_to_class_not_found(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "path_to_class = ./mlp.py", "path_to_class = ./models/missing.py")
    _fails(capsys, config, "[mlp_funnel] path_to_class", "'./models/missing.py' not found", str(tutorial_dir))


def test_path_to_class_falls_back_to_cwd(tutorial_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "configs"
    elsewhere.mkdir()
    (elsewhere / "config.ini").write_text((tutorial_dir / "config.ini").read_text())
    monkeypatch.chdir(tutorial_dir)
    config = mosaic.load_config(elsewhere / "config.ini")
    assert config.sections[0].resolved_path == (tutorial_dir / "dataset.py").resolve()


def test_class_not_defined(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "class = mlp_brick", "class = mlp_bricks")
    _fails(capsys, config, "[mlp_brick] class", "'mlp_bricks' is not defined", "mlp_brick, mlp_funnel")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{5-2}", "range {5-2} runs backwards; write {2-5}"),
        ("{a-3}", "'{a-3}' is not a range"),
        ("{1-}", "'{1-}' is not a range"),
        ("2, {4-x}", "'{4-x}' is not a range"),
    ],
)
def test_bad_range(capsys: pytest.CaptureFixture[str], tutorial_dir: Path, value: str, expected: str) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "width = {2-4}", f"width = {value}")
    _fails(capsys, config, "[mlp_funnel] width", expected)


def test_key_template_names_missing_param(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "key = mlp_funnel", "key = funnel_{depth}")
    _fails(capsys, config, "[mlp_funnel] key", "'{depth}'", "length, width")


def test_need_gpu_not_boolean(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "need_gpu = False", "need_gpu = maybe")
    _fails(capsys, config, "[MONITOR] need_gpu", "'maybe' is not a boolean")


def test_legacy_history_is_a_boolean_off_by_default(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    assert mosaic.load_config(config).monitor.legacy_history is False
    _edit(config, "need_gpu = False", "need_gpu = False\nlegacy_history = yes")
    assert mosaic.load_config(config).monitor.legacy_history is True
    _edit(config, "legacy_history = yes", "legacy_history = sometimes")
    _fails(capsys, config, "[MONITOR] legacy_history", "'sometimes' is not a boolean", "True or False")


@pytest.mark.parametrize("value", ["gpu0", "cuda:0, cuda:x", "cuda:0, cuda:0"])
def test_gpu_available_malformed(capsys: pytest.CaptureFixture[str], tutorial_dir: Path, value: str) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "gpu_available = None", f"gpu_available = {value}")
    _fails(capsys, config, "[MONITOR] gpu_available")


def test_need_gpu_without_devices(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "need_gpu = False", "need_gpu = True")
    _fails(capsys, config, "[MONITOR] gpu_available", "no device is listed")


def test_gpu_devices_parse(tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "gpu_available = None", "gpu_available = cuda:0, cuda:1")
    _edit(config, "need_gpu = False", "need_gpu = yes")
    loaded = mosaic.load_config(config)
    assert loaded.monitor.need_gpu and loaded.monitor.gpu_available == ("cuda:0", "cuda:1")


@pytest.mark.parametrize(("value", "size"), [("500M", 500 * 1024**2), ("2T", 2 * 1024**4), ("1.5G", int(1.5 * 1024**3)), ("64k", 64 * 1024)])
def test_cache_size_units(tutorial_dir: Path, value: str, size: int) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "cache_size = 500M", f"cache_size = {value}")
    assert mosaic.load_config(config).monitor.cache_size == size


def test_cache_size_without_unit(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "cache_size = 500M", "cache_size = 500")
    _fails(capsys, config, "[MONITOR] cache_size", "'500' has no unit", "T, G, M or K")


def test_loss_function_not_torch(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "loss_function = MSELoss", "loss_function = MSELos")
    _fails(capsys, config, "[PROCESS] loss_function", "'MSELos' is not a torch.nn loss", "MSELoss")


def test_both_loss_functions(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "loss_function = MSELoss", "loss_function = MSELoss\nclass_loss_function = Mine\npath_to_class_loss_function = ./mlp.py")
    _fails(capsys, config, "both loss_function and class_loss_function")


def test_neither_loss_function(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "loss_function = MSELoss\n", "")
    _fails(capsys, config, "[PROCESS] loss_function: missing", "class_loss_function")


def test_class_loss_function(tutorial_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tutorial_dir / "config.ini"
    (tutorial_dir / "losses.py").write_text("class HalfMSE:\n    pass\n")
    _edit(config, "loss_function = MSELoss", "class_loss_function = HalfMSE\npath_to_class_loss_function = losses.py")
    loaded = mosaic.load_config(config)
    assert loaded.process.class_loss_function == "HalfMSE"
    assert loaded.process.path_to_class_loss_function == (tutorial_dir / "losses.py").resolve()
    _edit(config, "class_loss_function = HalfMSE", "class_loss_function = FullMSE")
    _fails(capsys, config, "[PROCESS] class_loss_function", "'FullMSE' is not defined")


def test_optional_process_keys(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "epochs = 50", "epochs = 50\noptimizer = SGD\nseed = 7\naccuracy = threshold\ncheckpoint_every = 5\npatience = 3")
    process = mosaic.load_config(config).process
    assert (process.optimizer, process.seed, process.accuracy, process.checkpoint_every, process.patience) == ("SGD", 7, "threshold", 5, 3)
    _edit(config, "optimizer = SGD", "optimizer = Adamm")
    _fails(capsys, config, "[PROCESS] optimizer", "'Adamm'", "Adam")


def test_output_must_be_json(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    out = tutorial_dir / "pipelines.txt"
    rc = main(["generate", str(tutorial_dir / "config.ini"), str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert "pipelines.txt: not a .json file" in err and len(err.strip().splitlines()) == 1


def test_unused_section_is_a_warning(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    config.write_text(config.read_text() + "\n[norm]\ntype = normaliser\nclass = mlp_brick\npath_to_class = mlp.py\n")
    out = tutorial_dir / "p.json"
    assert main(["generate", str(config), str(out)]) == 0
    captured = capsys.readouterr()
    assert "[norm]: type 'normaliser' is in neither data_scheme nor pipeline_scheme" in captured.err
    assert out.exists() and "24 pipelines saved" in captured.out


def test_interpolation_error_is_clean(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "train_prop = 0.8", "train_prop = 80%")
    _fails(capsys, config, "[dataset_OR]", "%%")


def test_search_defaults_to_the_grid_and_reads_halving(tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    assert mosaic.load_config(config).search.strategy == "grid"
    config.write_text(config.read_text() + "\n[SEARCH]\nstrategy = halving\nmetric = test_acc\nreduction_factor = 2\nmin_epochs = 5\n")
    search = mosaic.load_config(config).search
    assert (search.halving, search.metric, search.reduction_factor, search.min_epochs) == (True, "test_acc", 2, 5)
    assert search.higher_is_better and search.rungs(50) == (5, 10, 20, 40)


@pytest.mark.parametrize(("lines", "expected"), [
    ("strategy = asha", "[SEARCH] strategy: 'asha' is not one of grid, halving"),
    ("strategy = halving\nreduction_factor = 1", "[SEARCH] reduction_factor: 1 is below 2; use 2 or more"),
    ("strategy = halving\nreduction_factor = three", "[SEARCH] reduction_factor: 'three' is not a whole number"),
    ("strategy = halving\nmin_epochs = 0", "[SEARCH] min_epochs: 0 is below 1"),
    ("strategy = halving\nmin_epochs = 50", "[SEARCH] min_epochs: 50 is not below [PROCESS] epochs = 50"),
    ("strategy = halving\nmetric = val_loss", "[SEARCH] metric: 'val_loss' is not one of test_loss, train_loss"),
    ("strategy = halving\nreduction = 3", "[SEARCH] reduction: not a [SEARCH] key; did you mean 'reduction_factor'?"),
])
def test_bad_search_values_are_refused_with_one_line(capsys: pytest.CaptureFixture[str], tutorial_dir: Path,
                                                       lines: str, expected: str) -> None:
    config = tutorial_dir / "config.ini"
    config.write_text(config.read_text() + f"\n[SEARCH]\n{lines}\n")
    _fails(capsys, config, expected)


def test_an_accuracy_metric_needs_accuracy(capsys: pytest.CaptureFixture[str], tutorial_dir: Path) -> None:
    config = tutorial_dir / "config.ini"
    _edit(config, "epochs = 50", "epochs = 50\naccuracy = none")
    config.write_text(config.read_text() + "\n[SEARCH]\nstrategy = halving\nmetric = test_acc\n")
    _fails(capsys, config, "[SEARCH] metric: 'test_acc' is not computed with [PROCESS] accuracy = none")
