"""The verdict drawn: interval charts per dataset and a critical-difference chart across datasets.

Each is a data function (tested on values) and an Altair chart function, as in
:mod:`mosaic.analysis.plots`; the tables come from :mod:`mosaic.analysis.verdict`.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from mosaic.analysis import plots
from mosaic.analysis.verdict import VERDICTS, verdict_table

#: one colour per verdict (best stands out; inconclusive is grey)
VERDICT_COLORS = ("#d62728", "#1f77b4", "#7f7f7f", "#c7c7c7")
#: models drawn per dataset (and across datasets): the best-ranked ones
MAX_MODELS = 30


def interval_data(table: pd.DataFrame, max_models: int = MAX_MODELS) -> pd.DataFrame:
    """``dataset, model, mean, ci_low, ci_high, n, verdict, best, order``: the best-ranked
    ``max_models`` models of each dataset, ``order`` 0 for the first-ranked."""
    columns = ["dataset", "model", "mean", "ci_low", "ci_high", "n", "verdict", "best", "order"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    data = table.sort_values(["dataset", "rank", "model"], kind="mergesort").copy()
    data["order"] = data.groupby("dataset").cumcount()
    data = data[data["order"] < max_models]
    data["best"] = data["verdict"] == "best"
    return data[columns].reset_index(drop=True)


def interval_chart(table: pd.DataFrame, metric: str, width: int = 420) -> alt.FacetChart:
    """Per dataset, one row per model: its mean (a point) and interval (a line), coloured by
    verdict, the best in bold red; models best-ranked first."""
    data = interval_data(table)
    shown = table.groupby("dataset").size()
    cut = [f"{d}: the {MAX_MODELS} best-ranked of {n} models" for d, n in shown.items() if n > MAX_MODELS]
    color = alt.Color("verdict:N", scale=alt.Scale(domain=list(VERDICTS), range=list(VERDICT_COLORS)),
                      legend=alt.Legend(orient="top", title=None))
    y = alt.Y("model:N", title=None, sort=alt.EncodingSortField(field="order", op="min"))
    tooltip = ["model:N", alt.Tooltip("mean:Q", format=".4g"), alt.Tooltip("ci_low:Q", format=".4g"),
               alt.Tooltip("ci_high:Q", format=".4g"), alt.Tooltip("n:Q", title="replicates"), "verdict:N"]
    rule = alt.Chart().mark_rule(strokeWidth=2).encode(
        x=alt.X("ci_low:Q", title=f"{metric} (mean, bootstrap interval)", scale=alt.Scale(zero=False)),
        x2="ci_high:Q", y=y, color=color, tooltip=tooltip)
    point = alt.Chart().mark_point(filled=True).encode(
        x="mean:Q", y=y, color=color, tooltip=tooltip,
        size=alt.condition("datum.best", alt.value(140), alt.value(50)),
        shape=alt.condition("datum.best", alt.value("diamond"), alt.value("circle")))
    chart = alt.layer(rule, point, data=data).properties(width=width).facet(
        row=alt.Row("dataset:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left", labelFontWeight="bold")),
    ).resolve_scale(y="independent", x="independent")
    subtitle = ["point: mean over replicates; line: bootstrap interval of the mean; ◆ the best", *cut]
    return chart.properties(title=alt.TitleParams(f"The verdict on {metric}", subtitle=subtitle, anchor="start"))


def rank_data(across: pd.DataFrame, max_models: int = MAX_MODELS) -> pd.DataFrame:
    """``model, mean_rank, verdict, order, band_low, band_high``: the best-ranked ``max_models``
    models across datasets, and the band from the best mean rank to it plus the critical difference."""
    columns = ["model", "mean_rank", "verdict", "order", "band_low", "band_high"]
    if across.empty:
        return pd.DataFrame(columns=columns)
    data = across.sort_values(["mean_rank", "model"], kind="mergesort").head(max_models).copy()
    data["order"] = range(len(data))
    best = float(across["mean_rank"].min())
    data["band_low"] = best
    data["band_high"] = best + float(across["critical_difference"].iloc[0])
    return data[columns].reset_index(drop=True)


def rank_chart(across: pd.DataFrame, width: int = 420) -> alt.LayerChart:
    """The critical-difference chart: each model's average rank over datasets (1 = best), and
    the band within Nemenyi's critical difference of the best (tied with it)."""
    data = rank_data(across)
    first = across.iloc[0]
    y = alt.Y("model:N", title=None, sort=alt.EncodingSortField(field="order", op="min"))
    scale = alt.Scale(domain=[1, max(2, len(across))], clamp=True)
    band = alt.Chart(data.head(1)).mark_rect(opacity=0.15, color="#1f77b4").encode(
        x=alt.X("band_low:Q", title="average rank over datasets (1 = best)", scale=scale), x2="band_high:Q")
    points = alt.Chart(data).mark_point(filled=True, size=70).encode(
        x=alt.X("mean_rank:Q", scale=scale), y=y,
        color=alt.Color("verdict:N", scale=alt.Scale(domain=list(VERDICTS), range=list(VERDICT_COLORS)),
                        legend=alt.Legend(orient="top", title=None)),
        tooltip=["model:N", alt.Tooltip("mean_rank:Q", format=".3g"), "verdict:N"])
    subtitle = [f"{int(first['datasets'])} datasets; Friedman p = {float(first['friedman_p']):.3g}; shaded: within the "
                f"critical difference {float(first['critical_difference']):.3g} of the best (Nemenyi, Demšar 2006)"]
    if len(across) > len(data):
        subtitle.append(f"the {len(data)} best-ranked of {len(across)} models")
    return alt.layer(band, points).properties(
        width=width, title=alt.TitleParams("Across datasets", subtitle=subtitle, anchor="start"))


def interval_summary(points: pd.DataFrame, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """:func:`mosaic.analysis.plots.metaplot_summary` with ``lower``/``upper`` the bootstrap
    interval of the mean at ``level`` (as in the verdict) instead of ±std, for a metaplot."""
    summary = plots.metaplot_summary(points)
    kept = points[points["included"]]
    if not kept.empty:
        frame = pd.DataFrame({"dataset": kept["group"].astype(str), "model": kept["nb_params"].map(repr),
                              "value": kept["value"].astype(float)})
        table = verdict_table(frame, "value", higher_is_better=False, level=level, seed=seed)
        bounds = table.set_index(["dataset", "model"])[["ci_low", "ci_high"]]
        index = list(zip(summary["group"].astype(str), summary["nb_params"].map(repr), strict=True))
        summary["lower"] = bounds["ci_low"].reindex(index).to_numpy()
        summary["upper"] = bounds["ci_high"].reindex(index).to_numpy()
    summary.attrs["band"] = f"mean and {level:.0%} bootstrap interval of the mean over replicates"
    return summary
