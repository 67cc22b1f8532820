"""The verdict's charts: data functions on values, chart functions on their spec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc

from mosaic.analysis import verdict, verdict_charts
from mosaic.cli import main
from tests.helpers.scores import model_pipeline, scored_store


def _table(models: int = 3, datasets: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [(f"d{d}", f"m{m}", v) for d in range(datasets) for m in range(models) for v in rng.normal(m, 0.01, 4)]
    return verdict.verdict_table(pd.DataFrame(rows, columns=["dataset", "model", "value"]), "loss", False)


def test_interval_data_keeps_the_best_ranked_models_first() -> None:
    data = verdict_charts.interval_data(_table(models=5), max_models=3)
    assert data.groupby("dataset")["model"].apply(list).to_dict() == {"d0": ["m0", "m1", "m2"], "d1": ["m0", "m1", "m2"]}
    assert data["order"].tolist() == [0, 1, 2, 0, 1, 2]
    assert data.loc[data["best"], "model"].tolist() == ["m0", "m0"]
    assert (data["ci_low"] <= data["mean"]).all() and (data["mean"] <= data["ci_high"]).all()


def test_rank_data_draws_the_band_of_the_critical_difference() -> None:
    across = verdict.across_datasets(_table(models=4, datasets=5), False)
    assert across is not None
    data = verdict_charts.rank_data(across)
    assert data["model"].tolist() == ["m0", "m1", "m2", "m3"] and data["mean_rank"].tolist() == [1.0, 2.0, 3.0, 4.0]
    cd = float(across["critical_difference"].iloc[0])
    assert data["band_low"].tolist() == [1.0] * 4 and data["band_high"].tolist() == [1.0 + cd] * 4
    assert verdict_charts.rank_data(across, max_models=2)["model"].tolist() == ["m0", "m1"]


def test_the_charts_render() -> None:
    table = _table(models=40)
    interval = verdict_charts.interval_chart(table, "loss").to_dict()
    assert "the 30 best-ranked of 40 models" in json.dumps(interval)
    assert vlc.vegalite_to_svg(interval).startswith("<svg")
    across = verdict.across_datasets(table, False)
    assert across is not None
    assert vlc.vegalite_to_svg(verdict_charts.rank_chart(across).to_dict()).startswith("<svg")


def test_metaplot_intervals_are_the_verdicts_bootstrap_intervals() -> None:
    rng = np.random.default_rng(4)
    points = pd.DataFrame({"group": ["a"] * 8 + ["b"] * 4, "nb_params": [10] * 4 + [20] * 4 + [10] * 4,
                           "value": rng.normal(1.0, 0.1, 12), "included": [True] * 11 + [False]})
    summary = verdict_charts.interval_summary(points).set_index(["group", "nb_params"])
    kept = points[points["included"]]
    frame = pd.DataFrame({"dataset": kept["group"], "model": kept["nb_params"].map(repr), "value": kept["value"]})
    table = verdict.verdict_table(frame, "value", False).set_index(["dataset", "model"])
    for (group, nb), row in summary.iterrows():
        assert row["lower"] == table.loc[(group, repr(nb)), "ci_low"] and row["upper"] == table.loc[(group, repr(nb)), "ci_high"]
        assert row["lower"] <= row["mean"] <= row["upper"]
    assert summary.loc[("b", 10), "n"] == 3  # the run left out is not a replicate
    assert "95% bootstrap interval" in summary.attrs["band"]


def test_cli_metaplot_draws_intervals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [(model_pipeline("OR", m), "done", {"test_loss": 0.1 * i + (m == "wide"), "nb_params": 10 + 5 * (m == "wide")})
            for m in ("brick", "wide") for i in range(4)]
    store = scored_store(tmp_path / "store", runs).path
    out = tmp_path / "meta.html"
    assert main(["metaplot", str(store), str(out), "OR", "test_loss", "--intervals"]) == 0
    assert "2 lines" in capsys.readouterr().out
    assert "bootstrap interval of the mean" in out.read_text()
