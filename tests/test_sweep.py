"""Pipeline expansion: identical, as parsed JSON, to the original mosaic_generate."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import mosaic
from mosaic.sweep import (
    count_pipelines,
    format_pipeline,
    legacy_params,
    read_pipelines,
    write_pipelines,
)
from tests.helpers.legacy import legacy_generate

HEADER = """\
[PROCESS]
lr = 1e-2
epochs = 3
loss_function = MSELoss
data_scheme = {data}
pipeline_scheme = {model}
run_files_path = runs

[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = 2
multiplicity = {multiplicity}
"""

CASES = {
    "tutorial-like": ("dataset", "mlp", 2, """
        [dataset_OR]
        type = dataset
        class = dataset_OR
        path_to_class = ./dataset.py
        batch_size = 1
        data_size = 200
        train_prop = 0.8
        key = data_{class}

        [mlp_funnel]
        type = mlp
        class = mlp_funnel
        path_to_class = ./mlp.py
        key = mlp_funnel
        length = {2-5}
        width = 3

        [mlp_brick]
        type = mlp
        class = mlp_brick
        path_to_class = ./mlp.py
        key = brick_{width}
        length = 4
        width = {2-4}
        """),
    "two ranges and two lists": ("dataset", "mlp", 1, """
        [dataset_OR]
        type = dataset
        class = dataset_OR
        path_to_class = ./dataset.py
        batch_size = 1, 4
        data_size = {100-101}
        train_prop = 0.5, 0.8
        key = d_{data_size}_{batch_size}

        [mlp_brick]
        type = mlp
        class = mlp_brick
        path_to_class = ./mlp.py
        length = {1-2}
        width = {3-4}
        key = b{length}x{width}
        """),
    "chained types and repeated type": ("dataset", "mlp, mlp", 3, """
        [dataset_OR]
        type = dataset
        class = dataset_OR
        path_to_class = ./dataset.py
        batch_size = 2
        data_size = 40
        train_prop = 0.8

        [mlp_a]
        type = mlp
        class = mlp_brick, mlp_funnel
        path_to_class = ./mlp.py
        length = 2
        width = 2
        """),
    "default section and upper-case keys": ("dataset", "mlp", 1, """
        [DEFAULT]
        train_prop = 0.7

        [dataset_OR]
        type = dataset
        class = dataset_OR
        path_to_class = ./dataset.py
        Batch_Size = 8
        data_size = 64

        [mlp_brick]
        type = mlp
        class = mlp_brick
        path_to_class = ./mlp.py
        length = 1
        width = 7, 9
        """),
    "unused type is ignored": ("dataset", "mlp", 1, """
        [dataset_OR]
        type = dataset
        class = dataset_OR
        path_to_class = ./dataset.py
        batch_size = 2
        data_size = 40
        train_prop = 0.8

        [mlp_brick]
        type = mlp
        class = mlp_brick
        path_to_class = ./mlp.py
        length = {1-3}
        width = 2

        [normaliser]
        type = norm
        class = mlp_brick
        path_to_class = ./mlp.py
        """),
}


def _write(folder: Path, case: str) -> Path:
    data, model, multiplicity, body = CASES[case]
    path = folder / "config.ini"
    path.write_text(HEADER.format(data=data, model=model, multiplicity=multiplicity) + textwrap.dedent(body))
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_generate_matches_the_original(tutorial_dir: Path, case: str) -> None:
    path = _write(tutorial_dir, case)
    ours = json.loads(json.dumps(mosaic.generate(path)))
    assert ours == legacy_generate(str(path))
    # same key order inside each section, as the original's JSON
    assert [[list(s) for s in p] for p in ours] == [[list(s) for s in p] for p in legacy_generate(str(path))]
    assert count_pipelines(mosaic.load_config(path)) == len(ours)


def test_order_ranges_slowest_then_lists(tutorial_dir: Path) -> None:
    path = _write(tutorial_dir, "two ranges and two lists")
    datasets = [p[0] for p in mosaic.generate(path)[::4]]  # 4 mlp variants per dataset variant
    combos = [(d["data_size"], d["batch_size"], d["train_prop"]) for d in datasets]
    assert combos == [
        (100, "1", "0.5"), (100, "1", "0.8"), (100, "4", "0.5"), (100, "4", "0.8"),
        (101, "1", "0.5"), (101, "1", "0.8"), (101, "4", "0.5"), (101, "4", "0.8"),
    ]
    assert datasets[0]["key"] == "d_100_1"


def test_name_only_on_expanded_sections_and_multiplicity(tutorial_dir: Path) -> None:
    path = _write(tutorial_dir, "tutorial-like")
    pipelines = mosaic.generate(path)
    assert len(pipelines) == (4 + 3) * 2
    assert pipelines[0] == pipelines[1] and pipelines[0] is not pipelines[2]
    assert "name" not in pipelines[0][0]
    assert pipelines[0][1]["name"] == "mlp_funnel" and pipelines[0][1]["length"] == 2
    assert [p[1]["key"] for p in pipelines[8::2]] == ["brick_2", "brick_3", "brick_4"]


def test_numeric_list_expands_embedded_ranges(tutorial_dir: Path) -> None:
    path = _write(tutorial_dir, "tutorial-like")
    path.write_text(path.read_text().replace("length = {2-5}", "length = 1, 2, {4-6}"))
    lengths = [p[1]["length"] for p in mosaic.generate(path) if p[1]["class"] == "mlp_funnel"][::2]
    assert lengths == ["1", "2", "4", "5", "6"]


def test_tutorial_config_generates_24_pipelines() -> None:
    pipelines = mosaic.generate(Path(mosaic.__file__).parent / "examples" / "tutorial" / "config.ini")
    assert len(pipelines) == 24
    assert format_pipeline(pipelines[0]) == "dataset_OR(1,200,0.8) | mlp_funnel(4,2)"
    assert {p[0]["key"] for p in pipelines} == {"dataset_OR"}


def test_legacy_params_naming() -> None:
    pipeline = [
        {"type": "dataset", "class": "dataset_OR", "batch_size": "4", "key": "data_dataset_OR"},
        {"type": "mlp", "class": "mlp_brick", "width": 2, "key": "brick_2", "name": "mlp_brick"},
    ]
    assert legacy_params(pipeline) == [
        ("dataset_OR_type", "dataset"), ("dataset_OR_class", "dataset_OR"), ("dataset_OR_batch_size", "4"),
        ("dataset_key", "data_dataset_OR"), ("mlp_brick_type", "mlp"), ("mlp_brick_class", "mlp_brick"),
        ("mlp_brick_width", 2), ("mlp_key", "brick_2"), ("mlp_brick_name", "mlp_brick"),
    ]


def test_pipeline_file_round_trip(tutorial_dir: Path, tmp_path: Path) -> None:
    pipelines = mosaic.generate(tutorial_dir / "config.ini")
    out = write_pipelines(pipelines, tmp_path / "p.json")
    assert read_pipelines(out) == json.loads(json.dumps(pipelines))
    assert json.loads(out.read_text()) == read_pipelines(out)


def test_read_pipelines_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(mosaic.ConfigError, match="line 1: not valid JSON"):
        read_pipelines(bad)
    bad.write_text('[[{"type": "x"}]]')
    with pytest.raises(mosaic.ConfigError, match="without class, path_to_class"):
        read_pipelines(bad)
    with pytest.raises(mosaic.ConfigError, match="not found"):
        read_pipelines(tmp_path / "missing.json")
