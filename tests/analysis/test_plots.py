"""Data functions of the plots, checked on values; chart functions checked on their spec."""

from __future__ import annotations

import json
import math

import altair as alt
import numpy as np
import pandas as pd
import pytest

from mosaic.analysis import plots
from mosaic.errors import UsageError


def _pipeline(family: str, width: int, dataset: str = "dataset_OR") -> list[dict]:
    return [
        {"type": "dataset", "class": dataset, "path_to_class": "./d.py", "batch_size": "4", "key": dataset},
        {"type": "mlp", "class": family, "path_to_class": "./m.py", "key": family, "width": width, "name": family},
    ]


def _frames(spec: list[tuple[int, str, int, str, float | None, int | None]]) -> tuple[pd.DataFrame, ...]:
    """runs, params, results from (run_id, family, width, status, test_loss, nb_params) rows."""
    runs, params, results = [], [], []
    for run_id, family, width, status, loss, nb in spec:
        pipe = _pipeline(family, width)
        runs.append({"run_id": run_id, "status": status, "pipeline": f"dataset_OR(4) | {family}({width})",
                     "pipeline_json": json.dumps(pipe)})
        params += [
            {"run_id": run_id, "param_name": "dataset_key", "param_value": "dataset_OR"},
            {"run_id": run_id, "param_name": "mlp_key", "param_value": family},
            {"run_id": run_id, "param_name": f"{family}_width", "param_value": str(width)},
            {"run_id": run_id, "param_name": "status", "param_value": status},
        ]
        if status == "done":
            results.append({"run_id": run_id, "train_loss": loss, "test_loss": loss, "nb_params": nb,
                            "overfit": 0.5, "trainability": 0.25, "slope": -0.01,
                            "slope_std_plus": 0.001, "slope_std_minus": 0.002, "duration(s)": 1.0})
    return pd.DataFrame(runs), pd.DataFrame(params), pd.DataFrame(results)


SWEEP = [
    (1, "funnel", 2, "done", 1.0, 10),
    (2, "funnel", 2, "done", 2.0, 10),
    (3, "funnel", 2, "done", 3.0, 10),
    (4, "funnel", 3, "done", 4.0, 100),
    (5, "brick", 2, "done", 5.0, 10),
    (6, "brick", 2, "done", 7.0, 10),
    (7, "brick", 2, "error", None, None),
    (8, "brick", 3, "system failure", None, None),
    (9, "brick", 3, "running", None, None),
]


def _rows(spec: dict) -> list[dict]:
    """The data rows of a chart spec, wherever Altair put them."""
    if "datasets" in spec:
        return [row for rows in spec["datasets"].values() for row in rows]
    return spec["data"]["values"]


# -- plotloss ------------------------------------------------------------------------------
def test_loss_pages_groups_runs_plot_size_squared_per_page() -> None:
    layout = plots.loss_pages([11, 12, 13, 14, 15, 16, 17, 18, 19, 20], plot_size=2)
    assert layout["page"].tolist() == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3]
    assert layout["row"].tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 0, 0]
    assert layout["col"].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert layout["run_id"].tolist() == list(range(11, 21))
    assert plots.loss_pages(list(range(240)), 3)["page"].max() == math.ceil(240 / 9)
    with pytest.raises(UsageError, match="plot_size"):
        plots.loss_pages([1], 0)


def test_loss_titles_are_id_pipeline_nb_params() -> None:
    runs, _, results = _frames(SWEEP)
    titles = plots.loss_titles(runs, results)
    assert titles[1] == "1: dataset_OR(4) | funnel(2) : 10"
    assert titles[7] == "7: dataset_OR(4) | brick(2) : n/a"


def test_loss_curves_long_form_latest_attempt_and_log_filter() -> None:
    history = pd.DataFrame({
        "run_id": [1, 1, 1, 1, 2],
        "attempt": [1, 1, 2, 2, 1],
        "epoch": [1, 2, 2, 3, 1],
        "train_loss": [0.9, 0.8, 0.7, 0.0, np.nan],
        "test_loss": [1.0, 0.95, 0.9, 0.85, 0.5],
    })
    curves = plots.loss_curves(history, pd.Series({1: "t1", 2: "t2"}))
    one = curves[curves["run_id"] == 1]
    assert one[one["series"] == "train"][["epoch", "loss"]].values.tolist() == [[1, 0.9], [2, 0.7], [3, 0.0]]
    assert one[one["series"] == "test"]["loss"].tolist() == [1.0, 0.9, 0.85]
    assert curves[curves["run_id"] == 2]["series"].tolist() == ["test"]  # NaN train loss dropped
    assert set(curves["title"]) == {"t1", "t2"}
    logged = plots.loss_curves(history, pd.Series({1: "t1", 2: "t2"}), log_scale=True)
    assert 0.0 not in logged["loss"].tolist()
    assert plots.loss_curves(history.iloc[0:0], pd.Series(dtype=object)).empty


def test_thin_curves_keeps_the_envelope() -> None:
    epochs = np.arange(1, 1001)
    loss = 1 / epochs
    loss[500] = 5.0  # a spike must survive
    curves = pd.DataFrame({"run_id": 1, "epoch": np.concatenate([epochs, epochs]),
                           "series": ["train"] * 1000 + ["test"] * 1000, "loss": np.concatenate([loss, loss / 2])})
    thin = plots.thin_curves(curves, 100)
    for series, group in thin.groupby("series"):
        assert len(group) <= 102
        assert group["epoch"].is_monotonic_increasing
        assert {1, 1000} <= set(group["epoch"])
        assert group["loss"].max() == (5.0 if series == "train" else 2.5)
    short = curves[curves["epoch"] <= 50]
    assert plots.thin_curves(short, 100) is short


def test_loss_annotations_text() -> None:
    _, _, results = _frames(SWEEP[:1])
    text = plots.loss_annotations(results)["annotation"][0]
    assert text == "overfit 0.5; trainability 0.25; slope -0.01 (+0.001/-0.002)"
    legacy = results.drop(columns=["slope_std_plus", "slope_std_minus"])
    assert plots.loss_annotations(legacy)["annotation"][0] == "overfit 0.5; trainability 0.25; slope -0.01"


def test_loss_chart_spec() -> None:
    runs, _, results = _frames(SWEEP[:5])
    history = pd.DataFrame([{"run_id": r, "epoch": e, "train_loss": 1 / e, "test_loss": 2 / e}
                            for r in range(1, 6) for e in range(1, 4)])
    curves = plots.loss_curves(history, plots.loss_titles(runs, results))
    chart = plots.loss_chart(curves, plots.loss_annotations(results), plot_size=3, log_scale=True,
                             title="page 1/1", notes=["No loss history for run 9"])
    assert isinstance(chart, alt.FacetChart)
    spec = chart.to_dict()
    assert spec["columns"] == 3
    assert spec["spec"]["encoding"]["y"]["scale"]["type"] == "log"
    assert spec["spec"]["encoding"]["strokeDash"]["scale"]["domain"] == ["train", "test"]
    assert spec["title"]["subtitle"] == ["No loss history for run 9"]
    labels = {row["label"] for row in spec["transform"][0]["from"]["data"]["values"]}  # one per panel
    assert len(labels) == 5
    assert any(label.startswith("1: dataset_OR(4) | funnel(2) : 10") for label in labels)


def test_long_titles_wrap_at_pipe_separators() -> None:
    title = "12: " + " | ".join(f"module_{i}(1,2,3)" for i in range(6)) + " : 999"
    wrapped = plots._wrap(title, 40, " | ", " |")
    assert all(len(line) <= 40 for line in wrapped.split("\n"))
    assert " ".join(wrapped.split("\n")) == title


# -- metaplot ------------------------------------------------------------------------------
def test_run_keys_from_pipeline_types() -> None:
    runs, params, _ = _frames(SWEEP)
    keys = plots.run_keys(runs, params)
    assert keys.set_index("run_id").loc[5, ["dataset_key", "model_key"]].tolist() == ["dataset_OR", "brick"]
    # legacy-like: no pipeline_json column, the pipeline JSON is a param; key params missing
    legacy_params = pd.concat([params[params["param_name"] != "mlp_key"], pd.DataFrame(
        [{"run_id": r["run_id"], "param_name": "pipeline", "param_value": r["pipeline_json"]}
         for r in runs.to_dict(orient="records")])])
    legacy = plots.run_keys(runs.drop(columns=["pipeline_json"]), legacy_params)
    assert legacy["model_key"].tolist() == keys["model_key"].tolist()  # from the JSON's "key"


def test_metaplot_mean_and_std_match_hand_computed() -> None:
    runs, params, results = _frames(SWEEP)
    points = plots.metaplot_points(runs, params, results, "dataset_OR", "test_loss")
    assert points["run_id"].tolist() == list(range(1, 10))
    assert points["included"].tolist() == [True] * 6 + [False] * 3
    summary = plots.metaplot_summary(points).set_index(["group", "nb_params"])
    assert summary.loc[("funnel", 10), "mean"] == pytest.approx(2.0)
    assert summary.loc[("funnel", 10), "std"] == pytest.approx(1.0)  # sample std of 1, 2, 3
    assert summary.loc[("funnel", 10), "n"] == 3
    assert summary.loc[("funnel", 100), "std"] == 0.0  # one replicate
    assert summary.loc[("brick", 10), "mean"] == pytest.approx(6.0)
    assert summary.loc[("brick", 10), "std"] == pytest.approx(math.sqrt(2))
    assert summary.loc[("brick", 10), "lower"] == pytest.approx(6 - math.sqrt(2))
    assert summary.loc[("brick", 10), "upper"] == pytest.approx(6 + math.sqrt(2))
    assert len(summary) == 3  # brick at 100 params has no done run
    assert plots.left_out(points) == ["2 failed runs left out", "1 unfinished run left out"]


def test_metaplot_group_by_a_param() -> None:
    runs, params, results = _frames(SWEEP)
    points = plots.metaplot_points(runs, params, results, "dataset_OR", "nb_params", group_by="funnel_width")
    done = points[points["included"]]
    assert done.groupby("group")["run_id"].apply(list).to_dict() == {"2": [1, 2, 3], "3": [4]}
    assert plots.left_out(points) == ["2 failed runs left out", "1 unfinished run left out",
                                      "2 runs without param funnel_width left out"]
    results.loc[results["run_id"] == 1, "overfit"] = np.nan  # e.g. a flat history
    points = plots.metaplot_points(runs, params, results, "dataset_OR", "overfit")
    assert "1 run with no overfit value left out" in plots.left_out(points)
    with pytest.raises(UsageError, match="no run of dataset key 'dataset_OR' has that param.*mlp_key"):
        plots.metaplot_points(runs, params, results, "dataset_OR", "nb_params", group_by="nope")


def test_metaplot_bad_inputs_name_the_choices() -> None:
    runs, params, results = _frames(SWEEP)
    with pytest.raises(UsageError, match="train_loss, test_loss, .*duration\\(s\\).*slope"):
        plots.metaplot_points(runs, params, results, "dataset_OR", "accuracy")
    with pytest.raises(UsageError, match="'dataset_XOR' matches no run; dataset keys in this store: dataset_OR"):
        plots.metaplot_points(runs, params, results, "dataset_XOR", "test_loss")
    # the dataset key may also be matched through any other *_key param
    assert len(plots.metaplot_points(runs, params, results, "brick", "test_loss")) == 5


def test_spans_decades() -> None:
    assert plots.spans_decades([10, 101])
    assert not plots.spans_decades([10, 100])
    assert not plots.spans_decades([])


def test_metaplot_chart_spec() -> None:
    runs, params, results = _frames(SWEEP)
    results.loc[results["nb_params"] == 100, "nb_params"] = 1000  # 10 .. 1000: two decades
    points = plots.metaplot_points(runs, params, results, "dataset_OR", "test_loss")
    chart = plots.metaplot_chart(points, "test_loss", "dataset_OR")
    spec = chart.to_dict()
    assert spec["params"][0]["bind"] == "legend"
    assert spec["params"][0]["select"]["fields"] == ["group"]
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert marks == ["errorband", "line", "circle"]
    tooltip = [t["field"] for t in spec["layer"][2]["encoding"]["tooltip"]]
    assert tooltip[0] == "run_id" and "pipeline" in tooltip
    assert spec["layer"][1]["encoding"]["x"]["scale"]["type"] == "log"
    assert "2 failed runs left out" in spec["title"]["subtitle"]


def test_metaplot_chart_linear_x_and_no_points_when_many(monkeypatch: pytest.MonkeyPatch) -> None:
    runs, params, results = _frames(SWEEP)
    points = plots.metaplot_points(runs, params, results, "dataset_OR", "test_loss")
    monkeypatch.setattr(plots, "MAX_POINTS", 3)
    spec = plots.metaplot_chart(points, "test_loss", "dataset_OR").to_dict()
    assert len(spec["layer"]) == 2
    assert spec["layer"][1]["encoding"]["x"]["scale"].get("type") != "log"


# -- report --------------------------------------------------------------------------------
def test_best_runs_per_model_and_dataset_key() -> None:
    runs, params, results = _frames(SWEEP)
    best = plots.best_runs(runs, params, results).set_index("model_key")
    assert best.loc["funnel", ["runs", "done", "failed", "best_run", "test_loss"]].tolist() == [4, 4, 0, 1, 1.0]
    assert best.loc["brick", ["runs", "done", "failed", "best_run", "test_loss"]].tolist() == [5, 2, 2, 5, 5.0]
    assert plots.status_counts(runs).set_index("status")["runs"].to_dict() == {
        "done": 6, "error": 1, "system failure": 1, "running": 1}


def test_table_chart() -> None:
    chart = plots.table_chart(pd.DataFrame({"a": [1.5, np.nan], "b": ["x", None]}), "t", ["sub"])
    spec = chart.to_dict()
    assert spec["title"]["text"] == "t"
    head, body = (layer["data"]["values"] for layer in spec["layer"])
    assert [cell["text"] for cell in head] == ["a", "b"]
    assert [(c["row"], c["column"], c["text"]) for c in body] == [(0, "a", "1.5"), (1, "a", ""), (0, "b", "x"), (1, "b", "")]
