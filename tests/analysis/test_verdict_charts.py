"""The verdict's charts: data functions on values, chart functions on their spec."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import vl_convert as vlc

from mosaic.analysis import verdict, verdict_charts


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
