"""The numbers behind every plot, and the Altair charts that draw them.

Each plot is two functions: a *data* function that takes DataFrames shaped like the SQL
views (``runs``, ``params``, ``run_results``, ``history``) and returns a DataFrame, and a
*chart* function that turns that DataFrame into an Altair chart (shown inline in Jupyter,
written to files by :mod:`mosaic.analysis.report`). Tests check the data functions'
numbers; nothing here touches files or the store.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from mosaic import sweep as sweeps
from mosaic.errors import UsageError
from mosaic.store.status import (  # FAILED: failed; any status but done and FAILED: unfinished
    FAILED,
    RunStatus,
)
from mosaic.text import format_cell as _format_text

#: run_results columns a metaplot can show (the original's list)
CRITERIA: tuple[str, ...] = (
    "train_loss", "test_loss", "train_acc", "test_acc", "nb_params",
    "duration(s)", "epochs", "overfit", "trainability", "slope",
)
SERIES = ("train", "test")
#: points drawn one by one in a metaplot only up to this many runs (tooltips per run);
#: also keeps a metaplot within Altair's default 5,000-row limit for inline display
MAX_POINTS = 5000
_COLORS = ["#1f77b4", "#ff7f0e"]
_DASHES = [[1, 0], [6, 4]]


# -- shared helpers ------------------------------------------------------------------------
def _pipeline_sections(text: Any, cache: dict[str, list[dict]]) -> list[dict]:
    if not isinstance(text, str) or not text:
        return []
    if text not in cache:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = []
        cache[text] = [s for s in parsed if isinstance(s, dict)] if isinstance(parsed, list) else []
    return cache[text]


def run_keys(runs: pd.DataFrame, params: pd.DataFrame) -> pd.DataFrame:
    """One row per run: ``run_id, status, pipeline, dataset_key, model_key``.

    The one rule of :func:`mosaic.sweep.dataset_and_model` (as in ``mosaic run``'s summary),
    with the schemes of the run's ``data_scheme``/``pipeline_scheme`` params (without them:
    first and last section types) and its ``<type>_key`` params (``rekey``) over the JSON's keys.
    """
    frame = runs.copy()
    wide = _params_wide(params)
    from_params = frame["run_id"].map(wide.get("pipeline", {}))
    frame["pipeline_json"] = frame["pipeline_json"].fillna(from_params) if "pipeline_json" in frame else from_params
    if "status" not in frame.columns:
        frame["status"] = frame["run_id"].map(wide.get("status", {}))
    if "pipeline" not in frame.columns:
        frame["pipeline"] = None
    key_params = {name[:-4]: values for name, values in wide.items() if name.endswith("_key")}
    data_schemes, model_schemes = wide.get("data_scheme", {}), wide.get("pipeline_scheme", {})
    cache: dict[str, list[dict]] = {}
    labels: dict[tuple, tuple[str | None, str | None]] = {}
    dataset_keys, model_keys = [], []
    for run_id, text in zip(frame["run_id"].tolist(), frame["pipeline_json"].tolist(), strict=True):
        run = int(run_id)
        sections = _pipeline_sections(text, cache)
        keys = {t: v[run] for t, v in key_params.items() if run in v}
        schemes = (data_schemes.get(run), model_schemes.get(run))
        memo = (text if isinstance(text, str) else None, schemes, tuple(sorted(keys.items())))
        if memo not in labels:
            labels[memo] = sweeps.dataset_and_model(sections, sweeps.scheme_types(schemes[0]),
                                                    sweeps.scheme_types(schemes[1]), keys)
        dataset, model = labels[memo]
        dataset_keys.append(dataset)
        model_keys.append(model)
    frame["dataset_key"] = dataset_keys
    frame["model_key"] = model_keys
    return frame[["run_id", "status", "pipeline", "dataset_key", "model_key"]].reset_index(drop=True)


def _params_wide(params: pd.DataFrame) -> dict[str, dict[int, str]]:
    """param_name -> {run_id: value as text} (the last row wins)."""
    wide: dict[str, dict[int, str]] = {}
    if params.empty:
        return wide
    kept = params[params["param_value"].notna()]
    for name, group in kept.groupby("param_name", sort=False):
        wide[str(name)] = dict(zip(group["run_id"].astype("int64").tolist(),
                                   group["param_value"].astype(str).tolist(), strict=True))
    return wide


# -- plotloss ------------------------------------------------------------------------------
def loss_pages(run_ids: Sequence[int], plot_size: int) -> pd.DataFrame:
    """Where each run's panel goes: ``run_id, page, row, col`` (pages from 1, in order)."""
    if plot_size < 1:
        raise UsageError(f"plot_size must be a positive integer; got {plot_size}")
    per_page = plot_size * plot_size
    index = np.arange(len(run_ids))
    slot = index % per_page
    return pd.DataFrame({
        "run_id": pd.array(list(run_ids), dtype="int64"),
        "page": index // per_page + 1,
        "row": slot // plot_size,
        "col": slot % plot_size,
    })


def loss_titles(runs: pd.DataFrame, results: pd.DataFrame) -> pd.Series:
    """Panel titles ``id: pipeline : nb_params`` (the original's), indexed by run_id."""
    nb = results.drop_duplicates("run_id", keep="last").set_index("run_id")["nb_params"] \
        if "nb_params" in results.columns else pd.Series(dtype=float)
    titles = {}
    for run_id, pipeline in zip(runs["run_id"], runs["pipeline"], strict=True):
        count = nb.get(run_id)
        count = "n/a" if count is None or pd.isna(count) else str(int(count))
        titles[int(run_id)] = f"{int(run_id)}: {pipeline} : {count}"
    return pd.Series(titles, dtype=object)


def loss_annotations(results: pd.DataFrame) -> pd.DataFrame:
    """``run_id, annotation``: overfit, trainability and slope (± its two stds), ``; ``-separated."""
    rows = []
    for row in results.drop_duplicates("run_id", keep="last").to_dict(orient="records"):
        slope = f"slope {_num(row.get('slope'))}"
        plus, minus = row.get("slope_std_plus"), row.get("slope_std_minus")
        if _finite(plus) or _finite(minus):
            slope += f" (+{_num(plus)}/-{_num(minus)})"
        parts = [f"overfit {_num(row.get('overfit'))}", f"trainability {_num(row.get('trainability'))}", slope]
        rows.append({"run_id": int(row["run_id"]), "annotation": "; ".join(parts)})
    return pd.DataFrame(rows, columns=["run_id", "annotation"])


def loss_curves(history: pd.DataFrame, titles: pd.Series, log_scale: bool = False) -> pd.DataFrame:
    """Long form of the loss histories: ``run_id, title, epoch, series, loss``.

    ``series`` is ``train`` or ``test``. When a run was continued (several attempts), the
    latest attempt's row wins for an epoch. Non-finite losses are dropped, and so are
    losses <= 0 when ``log_scale``.
    """
    columns = ["run_id", "title", "epoch", "series", "loss"]
    if history.empty:
        return pd.DataFrame(columns=columns)
    frame = history
    if "attempt" in frame.columns:
        frame = frame.sort_values(["run_id", "epoch", "attempt"]).drop_duplicates(["run_id", "epoch"], keep="last")
    long = frame.melt(id_vars=["run_id", "epoch"], value_vars=["train_loss", "test_loss"],
                      var_name="series", value_name="loss")
    long["series"] = long["series"].str.removesuffix("_loss")
    long["loss"] = pd.to_numeric(long["loss"], errors="coerce")
    keep = np.isfinite(long["loss"].to_numpy(dtype=float, na_value=np.nan))
    if log_scale:
        keep &= long["loss"].to_numpy(dtype=float, na_value=np.nan) > 0
    long = long[keep]
    long["title"] = long["run_id"].map(titles)
    long = long.sort_values(["run_id", "series", "epoch"], key=_series_first)
    return long[columns].reset_index(drop=True)


def thin_curves(curves: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """At most about ``max_points`` points per (run, series), for drawing long histories.

    Epochs are cut into consecutive buckets and each bucket keeps its lowest and highest
    loss (and the first and last epoch are always kept), so the drawn envelope, spikes
    included, is unchanged at one bucket per pixel.
    """
    if curves.empty:
        return curves
    keys = [curves["run_id"], curves["series"]]
    position = curves.groupby(keys, sort=False).cumcount()
    size = curves.groupby(keys, sort=False)["epoch"].transform("size")
    if int(size.max()) <= max_points:
        return curves
    step = np.ceil(size / max(1, max_points // 2)).astype("int64")
    bucket = position // step
    groups = curves["loss"].groupby([curves["run_id"], curves["series"], bucket], sort=False)
    keep = set(groups.idxmin()) | set(groups.idxmax())
    keep |= set(curves.index[(position == 0) | (position == size - 1)])
    return curves.loc[curves.index.isin(keep)]


def _series_first(column: pd.Series) -> pd.Series:
    return column.map({"train": 0, "test": 1}) if column.name == "series" else column


def loss_chart(
    curves: pd.DataFrame,
    annotations: pd.DataFrame | None = None,
    plot_size: int = 2,
    log_scale: bool = False,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> alt.FacetChart:
    """One page: a plot_size-wide grid of loss panels, train solid and test dashed.

    Panels follow ``curves``' run order; each is headed by its ``title`` and, when
    ``annotations`` has a row for the run, a grey line with overfit, trainability and slope.
    Each panel has its own axes. ``notes`` become subtitle lines (runs without history...).
    Long histories are thinned to two points per pixel (:func:`thin_curves`). Data stays
    a DataFrame (fast to serialise): to show a page of more than 5,000 points inline, call
    ``alt.data_transformers.disable_max_rows()`` first (files are written without that limit).
    """
    width = max(150, 840 // plot_size - 60)
    height = int(width * 0.55)
    limit = max(24, int(width / 5.4))
    text = {} if annotations is None or annotations.empty else \
        annotations.drop_duplicates("run_id").set_index("run_id")["annotation"].to_dict()
    data = thin_curves(curves.reset_index(drop=True), 2 * width).copy()
    labels = {run: _wrap(str(head), limit, " | ", " |") + ("\n" + _wrap(text[run], limit, "; ", ";") if run in text else "")
              for run, head in dict(zip(data["run_id"], data["title"], strict=True)).items()}
    data["order"] = data["run_id"].map({run: i for i, run in enumerate(labels)})
    # panel labels travel once per panel (a lookup), not once per point: a lighter spec to render
    heads = alt.LookupData(alt.Data(values=[{"order": i, "label": label} for i, label in enumerate(labels.values())]),
                           key="order", fields=["label"])
    y_scale = alt.Scale(type="log", nice=False, padding=6) if log_scale else alt.Scale(zero=False)
    lines = alt.Chart(data[["run_id", "epoch", "series", "loss", "order"]]).mark_line(strokeWidth=1.5).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("loss:Q", title="loss (log)" if log_scale else "loss", scale=y_scale),
        color=alt.Color("series:N", scale=alt.Scale(domain=list(SERIES), range=_COLORS),
                        legend=alt.Legend(title=None, orient="top", symbolStrokeWidth=2)),
        strokeDash=alt.StrokeDash("series:N", scale=alt.Scale(domain=list(SERIES), range=_DASHES), legend=None),
    ).properties(width=width, height=height)
    chart = lines.facet(
        facet=alt.Facet("label:N", title=None, sort=alt.EncodingSortField(field="order", op="min"),
                        header=alt.Header(labelFontSize=10, labelLimit=0, labelAnchor="start", labelAlign="left",
                                          labelExpr="split(datum.value, '\\n')")),
        columns=plot_size,
    ).transform_lookup(lookup="order", from_=heads).resolve_scale(x="independent", y="independent").resolve_axis(
        x="independent", y="independent")
    if title or notes:
        chart = chart.properties(title=alt.TitleParams(
            text=title or "", subtitle=[line for note in notes for line in textwrap.wrap(note, 150)],
            anchor="start", subtitleColor="#a33",
        ))
    return chart


def _wrap(text: str, limit: int, sep: str, keep: str) -> str:
    """Break ``text`` at ``sep`` (leaving ``keep`` at the line end) so lines fit ``limit`` chars."""
    if len(text) <= limit:
        return text
    lines, current = [], ""
    for part in text.split(sep):
        piece = part if not current else f"{current}{sep}{part}"
        if current and len(piece) > limit:
            lines.append(current + keep)
            current = part
        else:
            current = piece
    lines.append(current)
    return "\n".join(lines)


def _finite(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and not math.isfinite(value)) and not pd.isna(value)


def _num(value: Any) -> str:
    return f"{float(value):.3g}" if _finite(value) else "n/a"


# -- metaplot ------------------------------------------------------------------------------
def check_criterion(criterion: str) -> str:
    """Return ``criterion`` if it is a run_results column a metaplot can show."""
    if criterion not in CRITERIA:
        raise UsageError(f"criterion {criterion!r} is not a run_results column; use one of: {', '.join(CRITERIA)}")
    return criterion


def metaplot_points(
    runs: pd.DataFrame,
    params: pd.DataFrame,
    results: pd.DataFrame,
    dataset_key: str,
    criterion: str,
    group_by: str | None = None,
) -> pd.DataFrame:
    """The runs of one dataset key: ``run_id, group, nb_params, value, status, pipeline,
    included, left_out``.

    A run belongs to ``dataset_key`` when one of its ``*_key`` params, or its dataset (see
    :func:`run_keys`), equals it. ``group`` is
    the model key (see :func:`run_keys`) or the value of param ``group_by``; ``value`` is the
    criterion. ``included`` is false for runs left out, and ``left_out`` says why: failed,
    unfinished, with no value, without the group param.
    """
    check_criterion(criterion)
    keys = params[params["param_name"].astype(str).str.endswith("_key")]
    matching = set(keys.loc[keys["param_value"].astype(str) == str(dataset_key), "run_id"].astype(int))
    info = run_keys(runs, params)
    matching |= set(info.loc[info["dataset_key"] == str(dataset_key), "run_id"].astype(int))
    if not matching:
        known = sorted({k for k in info["dataset_key"].dropna()}) or sorted(set(keys["param_value"].astype(str)))
        raise UsageError(f"dataset key {dataset_key!r} matches no run; dataset keys in this store: "
                         f"{', '.join(known) or '(none: the store has no runs)'}")
    info = info[info["run_id"].isin(matching)].copy()
    if group_by is None:
        info["group"] = info["model_key"]
    else:
        values = _params_wide(params[params["run_id"].isin(matching)]).get(group_by)
        if values is None:
            names = sorted(set(params.loc[params["run_id"].isin(matching), "param_name"]))
            raise UsageError(f"--group-by {group_by!r}: no run of dataset key {dataset_key!r} has that param; "
                             f"params of these runs: {', '.join(names)}")
        info["group"] = info["run_id"].map(values)
    res = results.drop_duplicates("run_id", keep="last").set_index("run_id")
    info["nb_params"] = pd.to_numeric(info["run_id"].map(res["nb_params"]), errors="coerce") \
        if "nb_params" in res.columns else np.nan
    info["value"] = pd.to_numeric(info["run_id"].map(res[criterion]), errors="coerce") \
        if criterion in res.columns else np.nan
    finite = np.isfinite(info["value"].to_numpy(dtype=float, na_value=np.nan)) & \
        np.isfinite(info["nb_params"].to_numpy(dtype=float, na_value=np.nan))
    done = (info["status"] == RunStatus.DONE.value).to_numpy()
    reason = np.where(info["status"].isin(FAILED), "failed", np.where(done, "", "unfinished")).astype(object)
    reason[done & ~finite] = f"with no {criterion} value" if criterion != "nb_params" else "with no nb_params"
    reason[done & finite & info["group"].isna().to_numpy()] = f"without param {group_by}" if group_by else "without a model key"
    info["left_out"] = reason
    info["included"] = reason == ""
    columns = ["run_id", "group", "nb_params", "value", "status", "pipeline", "included", "left_out"]
    return info[columns].sort_values("run_id").reset_index(drop=True)


def left_out(points: pd.DataFrame) -> list[str]:
    """Notes on the runs a metaplot leaves out, e.g. ``2 failed runs left out``."""
    notes = []
    for reason, count in points.loc[~points["included"], "left_out"].value_counts(sort=False).items():
        runs = "run" if count == 1 else "runs"
        notes.append(f"{count} {reason} {runs} left out" if reason in ("failed", "unfinished")
                     else f"{count} {runs} {reason} left out")
    return sorted(notes, key=lambda n: ("failed" not in n, "unfinished" not in n, n))


def metaplot_summary(points: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of the criterion over replicates: ``group, nb_params, mean, std, lower, upper, n``.

    ``std`` is the sample standard deviation (ddof=1); 0 for a single replicate.
    """
    kept = points[points["included"]]
    columns = ["group", "nb_params", "mean", "std", "lower", "upper", "n"]
    if kept.empty:
        return pd.DataFrame(columns=columns)
    grouped = kept.groupby(["group", "nb_params"], sort=True)["value"]
    summary = grouped.agg(mean="mean", std="std", n="count").reset_index()
    summary["std"] = summary["std"].fillna(0.0)
    summary["lower"] = summary["mean"] - summary["std"]
    summary["upper"] = summary["mean"] + summary["std"]
    return summary[columns]


def spans_decades(values: Iterable[float]) -> bool:
    """True when positive ``values`` span more than one decade (log x is then clearer)."""
    array = np.asarray([v for v in values if _finite(v) and v > 0], dtype=float)
    return array.size > 0 and math.log10(array.max()) - math.log10(array.min()) > 1


def metaplot_chart(
    points: pd.DataFrame,
    criterion: str,
    dataset_key: str,
    group_title: str = "model",
    width: int = 480,
    height: int = 300,
    summary: pd.DataFrame | None = None,
) -> alt.LayerChart:
    """Criterion against nb_params, one line per group: mean with a ±std band (or the band of
    ``summary``, e.g. :func:`mosaic.analysis.verdict_charts.interval_summary`).

    Each run is a small point with a tooltip (run id, params) up to :data:`MAX_POINTS` runs.
    Clicking a legend entry highlights that group (in HTML). Runs left out are counted in
    the subtitle.
    """
    summary = metaplot_summary(points) if summary is None else summary
    kept = points[points["included"]]
    log_x = spans_decades(summary["nb_params"])
    x = alt.X("nb_params:Q", title="nb_params" + (" (log)" if log_x else ""),
              scale=alt.Scale(type="log", nice=False, padding=12) if log_x else alt.Scale(zero=False))
    pick = alt.selection_point(fields=["group"], bind="legend", name="pick_" + re.sub(r"\W", "_", criterion))
    color = alt.Color("group:N", title=group_title,
                      legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=3, symbolOpacity=1))
    fade = alt.condition(pick, alt.value(1.0), alt.value(0.12))
    band = alt.Chart(summary).mark_errorband(opacity=0.25).encode(
        x=x, y=alt.Y("lower:Q", title=criterion, scale=alt.Scale(zero=False)), y2="upper:Q", color=color,
        opacity=alt.condition(pick, alt.value(0.25), alt.value(0.04)),
    )
    line = alt.Chart(summary).mark_line(point=True).encode(
        x=x, y=alt.Y("mean:Q", title=criterion), color=color, opacity=fade,
        tooltip=[alt.Tooltip("group:N", title=group_title), "nb_params:Q",
                 alt.Tooltip("mean:Q", format=".4g"), alt.Tooltip("std:Q", format=".3g"),
                 alt.Tooltip("n:Q", title="replicates")],
    ).add_params(pick)
    layers: list[alt.Chart] = [band, line]
    if 0 < len(kept) <= MAX_POINTS:
        dots = kept[["run_id", "group", "nb_params", "value", "pipeline"]]
        layers.append(alt.Chart(dots).mark_circle(size=18).encode(
            x=x, y=alt.Y("value:Q", title=criterion), color=color,
            opacity=alt.condition(pick, alt.value(0.45), alt.value(0.05)),
            tooltip=[alt.Tooltip("run_id:Q", title="run"), alt.Tooltip("group:N", title=group_title),
                     "nb_params:Q", alt.Tooltip("value:Q", title=criterion, format=".4g"),
                     alt.Tooltip("pipeline:N", title="params")],
        ))
    subtitle = [f"{len(kept)} runs, {summary.attrs.get('band', 'mean ± std over replicates')}"] + left_out(points)
    return alt.layer(*layers).properties(
        width=width, height=height,
        title=alt.TitleParams(f"{criterion} vs nb_params — {dataset_key}", subtitle=subtitle, anchor="start"),
    )


# -- report --------------------------------------------------------------------------------
def status_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """``status, runs``: how many runs have each status, most frequent first."""
    counts = runs["status"].fillna("unknown").value_counts()
    return pd.DataFrame({"status": counts.index.astype(str), "runs": counts.to_numpy(dtype="int64")})


def best_runs(runs: pd.DataFrame, params: pd.DataFrame, results: pd.DataFrame, by: str = "test_loss") -> pd.DataFrame:
    """One row per (dataset key, model key): run counts and the done run with the lowest ``by``.

    Columns: ``dataset_key, model_key, runs, done, failed, best_run``, then ``by``,
    ``test_loss``, ``train_loss``, ``nb_params`` (each once) and ``pipeline``; sorted by
    dataset key, then ``by``.
    """
    check_criterion(by)
    metrics = list(dict.fromkeys([by, "test_loss", "train_loss", "nb_params"]))
    res = results.drop_duplicates("run_id", keep="last").reindex(columns=["run_id", *metrics])
    frame = run_keys(runs, params).merge(res, on="run_id", how="left")
    frame["dataset_key"] = frame["dataset_key"].fillna("(none)")
    frame["model_key"] = frame["model_key"].fillna("(none)")
    rows = []
    for (dataset, model), group in frame.groupby(["dataset_key", "model_key"], sort=True):
        is_done = group["status"] == RunStatus.DONE.value
        failed = group["status"].isin(FAILED)
        row: dict[str, Any] = {"dataset_key": dataset, "model_key": model, "runs": len(group),
                               "done": int(is_done.sum()), "failed": int(failed.sum()), "best_run": None}
        row.update(dict.fromkeys(metrics))
        row["pipeline"] = None
        candidates = group[is_done & pd.to_numeric(group[by], errors="coerce").notna()]
        if not candidates.empty:
            best = candidates.sort_values([by, "run_id"]).iloc[0]
            row.update({name: best[name] for name in metrics})
            row.update(best_run=int(best["run_id"]), pipeline=best["pipeline"])
        rows.append(row)
    table = pd.DataFrame(rows, columns=["dataset_key", "model_key", "runs", "done", "failed",
                                        "best_run", *metrics, "pipeline"])
    table["best_run"] = table["best_run"].astype("Int64")
    if "nb_params" in table.columns:
        table["nb_params"] = pd.to_numeric(table["nb_params"], errors="coerce").round().astype("Int64")
    if not table.empty:
        table = table.sort_values(["dataset_key", by, "model_key"], na_position="last").reset_index(drop=True)
    return table


def table_chart(table: pd.DataFrame, title: str | None = None, subtitle: Sequence[str] = ()) -> alt.LayerChart:
    """A DataFrame drawn as a text table (for PDF pages; HTML reports use a real table)."""
    cells: list[dict[str, Any]] = []
    widths = {}
    for col in table.columns:
        texts = [format_cell(v) for v in table[col]]
        widths[col] = max([len(str(col)), *map(len, texts)]) * 6.2 + 14
        cells += [{"row": i, "column": str(col), "text": t} for i, t in enumerate(texts)]
    x = 0.0
    offsets = {}
    for col in table.columns:
        offsets[str(col)] = x
        x += widths[col]
    for cell in cells:
        cell["x"] = offsets[cell["column"]]
    heads = [{"row": -1, "column": c, "text": c, "x": offsets[c]} for c in offsets]
    scale = alt.Scale(domain=[0, max(x, 1)], range=[0, max(x, 1)])
    y = alt.Y("row:O", axis=None, scale=alt.Scale(domain=list(range(-1, len(table))), paddingInner=0))
    base = alt.Chart(alt.Data(values=cells)).mark_text(align="left", fontSize=11).encode(
        x=alt.X("x:Q", axis=None, scale=scale), y=y, text="text:N")
    head = alt.Chart(alt.Data(values=heads)).mark_text(align="left", fontSize=11, fontWeight="bold").encode(
        x=alt.X("x:Q", axis=None, scale=scale), y=y, text="text:N")
    chart = alt.layer(head, base).properties(width=max(x, 1), height=18 * (len(table) + 1),
                                             view=alt.ViewBackground(stroke=None))
    if title:
        chart = chart.properties(title=alt.TitleParams(title, subtitle=list(subtitle), anchor="start", fontSize=16))
    return chart


def format_cell(value: Any) -> str:
    """A table cell as text (:func:`mosaic.text.format_cell`): empty for null or NaN, floats
    to 4 significant digits."""
    missing = value is None or (not isinstance(value, str) and bool(pd.isna(value)))
    return _format_text(None if missing else value)
