"""The plot commands: plotloss, metaplot and the study report.

Data comes from a store reader (:func:`mosaic.store.reader.open_reader`: a store folder,
or a database of the original tool plus its run-files folder); the numbers and charts
come from :mod:`mosaic.analysis.plots`; files are written by :mod:`mosaic.analysis.render`.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from mosaic.analysis import plots, verdict_charts
from mosaic.analysis.compare import Verdict, verdict
from mosaic.analysis.frames import load_history, load_params, load_results, load_runs
from mosaic.analysis.render import (
    PathLike,
    check_output,
    html_page,
    save_chart,
    save_pages,
)
from mosaic.analysis.search_report import read_search, search_chart, search_html
from mosaic.errors import SelectionError, StoreError, UsageError
from mosaic.store.files import atomic_write
from mosaic.store.reader import Reader, open_reader, select_runs


@dataclass(frozen=True)
class PlotResult:
    """What a plot command wrote, for the terminal."""

    path: Path
    pages: int
    runs: int
    files: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()
    what: str = "runs drawn"

    def render(self) -> str:
        """A few lines: the file(s) written, pages, runs, and notes (runs left out...)."""
        pages = f"{self.pages} page{'s' if self.pages != 1 else ''}"
        lines = [f"{self.path}: {pages}, {self.runs} {self.what}"]
        if len(self.files) > 1:
            lines.append(f"  files: {self.files[0].name} ... {self.files[-1].name}")
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


# -- reading the store -----------------------------------------------------------------------
def _open(store: Any, run_files: PathLike | None, need_history: bool = False) -> Reader:
    """A reader of ``store`` (a store folder, an original ``.db``, a session or a reader).

    For a database of the original tool given without ``run_files``, plots that need
    histories look for the run-files folder its ``run_files_path`` param names (relative
    to the database's folder), as the original's own commands would have.
    """
    reader = open_reader(store, run_files=run_files)
    if not isinstance(store, str | os.PathLike) or not (need_history and run_files is None and reader.is_legacy):
        return reader
    for value in reader.param_values("run_files_path"):
        if value is None:
            continue
        folder = Path(str(value)).expanduser()
        folder = folder if folder.is_absolute() else Path(store).resolve().parent / folder
        if folder.is_dir():
            reader.close()
            return open_reader(store, run_files=folder)
    return reader


def _history_note(reader: Reader, missing: Sequence[int]) -> list[str]:
    if not missing:
        return []
    note = f"no loss history for run{'s' if len(missing) > 1 else ''} {_id_list(missing)}"
    if reader.is_legacy:
        note += " (for a database of the original tool, give its run-files folder)"
    return [note]


def _close(reader: Reader, store: Any) -> None:
    if reader is not store:
        reader.close()


# -- plotloss --------------------------------------------------------------------------------
def loss_page_charts(
    session: Any, run_ids: Sequence[int], plot_size: int = 2, log_scale: bool = False,
    runs: pd.DataFrame | None = None, title: str = "Loss curves",
) -> tuple[list[alt.FacetChart | alt.Chart], list[int]]:
    """The loss pages of some runs (panels in ``run_ids`` order), and the runs that have no
    history (noted on the last page)."""
    runs = load_runs(session) if runs is None else runs
    runs = runs[runs["run_id"].isin(run_ids)]
    results = load_results(session, run_ids)
    titles = plots.loss_titles(runs, results)
    curves = plots.loss_curves(load_history(session, run_ids), titles, log_scale=log_scale)
    present = set(curves["run_id"].unique())
    drawn = [i for i in run_ids if i in present]
    missing = [i for i in run_ids if i not in present]
    notes = [f"No loss history for run{'s' if len(missing) > 1 else ''} {_id_list(missing)}"] if missing else []
    annotations = plots.loss_annotations(results)
    layout = plots.loss_pages(drawn, plot_size)
    pages = int(layout["page"].max()) if len(layout) else 0
    charts: list[alt.FacetChart | alt.Chart] = []  # a Chart of the notes when no run has a history
    position = {run_id: index for index, run_id in enumerate(drawn)}
    for page, ids in layout.groupby("page", sort=True)["run_id"]:
        chart_notes = notes if page == pages else []
        page_curves = curves[curves["run_id"].isin(ids)]
        page_curves = page_curves.sort_values("run_id", key=lambda c: c.map(position), kind="stable")
        charts.append(plots.loss_chart(page_curves, annotations, plot_size=plot_size,
                                       log_scale=log_scale, title=f"{title} — page {page}/{pages}",
                                       notes=chart_notes))
    if not charts:
        charts.append(_notes_chart(title, notes))
    return charts, missing


def _notes_chart(title: str, notes: Sequence[str]) -> alt.Chart:
    return alt.Chart(alt.Data(values=[{}])).mark_text().properties(
        width=400, height=20, title=alt.TitleParams(title, subtitle=list(notes), anchor="start", subtitleColor="#a33"),
    )


def _id_list(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)


def _select(reader: Reader, selection: Any) -> list[int]:
    """All runs when ``selection`` is None; otherwise the selection's runs (ids that are
    not in the store are a SelectionError naming them, from :func:`select_runs`)."""
    if selection is None:
        ids = reader.run_ids()
        if not ids:
            raise SelectionError(f"{reader.path}: no runs yet; run a sweep first ('mosaic run CONFIG STORE')")
        return ids
    return [int(i) for i in select_runs(reader, selection)]


def plotloss(
    store: Any,
    out: PathLike,
    run_files: PathLike | None = None,
    selection: Any = None,
    plot_size: int = 2,
    log_scale: bool = False,
) -> PlotResult:
    """Loss curves of the selected runs (all when ``selection`` is None), plot_size² per page.

    Each panel: train (solid) and test (dashed) loss per epoch, titled ``id: pipeline :
    nb_params`` and annotated with overfit, trainability and slope. Selected runs without
    a history are listed on the last page and in the result's notes. A PDF has
    ceil(runs with history / plot_size²) pages (one page of notes if none has a history).
    """
    target = check_output(out)
    if plot_size < 1:
        raise UsageError(f"-plot_size must be a positive integer; got {plot_size}")
    session = _open(store, run_files, need_history=True)
    try:
        ids = _select(session, selection)
        charts, missing = loss_page_charts(session, ids, plot_size, log_scale)
        notes = _history_note(session, missing)
    finally:
        _close(session, store)
    files = save_pages(charts, target)
    return PlotResult(target, len(charts), len(ids) - len(missing), tuple(files), tuple(notes))


# -- metaplot --------------------------------------------------------------------------------
def metaplot_chart_for(session: Any, dataset_key: str, criterion: str, group_by: str | None = None,
                       runs: pd.DataFrame | None = None, params: pd.DataFrame | None = None,
                       results: pd.DataFrame | None = None,
                       intervals: bool = False) -> tuple[alt.LayerChart, pd.DataFrame]:
    """The metaplot chart of an open store and the per-run points behind it (``intervals``:
    bands are the bootstrap intervals of the mean, as in the verdict, not ±std)."""
    plots.check_criterion(criterion)
    runs = load_runs(session) if runs is None else runs
    params = load_params(session, [group_by] if group_by else []) if params is None else params
    results = load_results(session) if results is None else results
    points = plots.metaplot_points(runs, params, results, dataset_key, criterion, group_by=group_by)
    summary = verdict_charts.interval_summary(points) if intervals else None
    chart = plots.metaplot_chart(points, criterion, dataset_key, group_title=group_by or "model", summary=summary)
    return chart, points


def metaplot(store: Any, out: PathLike, dataset_key: str, criterion: str, group_by: str | None = None,
             run_files: PathLike | None = None, intervals: bool = False) -> PlotResult:
    """CRITERION against nb_params for the runs of DATASET_KEY, one line per model.

    Lines are grouped by the model type's key (or param ``group_by``); each point is the
    mean over replicates with a ±std band (``intervals``: the 95 % bootstrap interval of the
    mean, as in the verdict); x is logarithmic when nb_params spans more than a decade.
    Failed runs are left out and counted on the chart and in the result.
    """
    target = check_output(out)
    plots.check_criterion(criterion)
    session = _open(store, run_files)
    try:
        chart, points = metaplot_chart_for(session, dataset_key, criterion, group_by, intervals=intervals)
    finally:
        _close(session, store)
    save_chart(chart, target)
    kept = points[points["included"]]
    notes = [f"{criterion} vs nb_params for dataset key {dataset_key}: {kept['group'].nunique()} lines",
             *plots.left_out(points)]
    return PlotResult(target, 1, len(kept), (target,), tuple(notes))


# -- report ----------------------------------------------------------------------------------
def report(store: Any, out: PathLike, run_files: PathLike | None = None) -> PlotResult:
    """The study report: the verdict first (which model is best on which dataset, how sure:
    :func:`mosaic.analysis.compare.verdict` on test_loss, with interval charts and the ranks
    across datasets); for a store a search wrote (``[SEARCH] strategy = halving``), the Search
    section: epochs trained against a full grid's, and the pipelines stopped, where and why;
    then the sweep summary and best runs, metaplots of test_loss and overfit per dataset key,
    and the loss curves of the best run of each model.

    ``.html`` is interactive (tooltips with run id and params, click a legend entry to
    highlight a model); ``.pdf`` has a verdict page, the search page (if any), a summary page,
    a page per dataset key, then the loss curve pages.
    """
    target = check_output(out)
    if target.suffix.lower() not in (".html", ".pdf"):
        raise UsageError(f"{target}: a report is .html or .pdf; e.g. {target.with_suffix('.html')}")
    session = _open(store, run_files, need_history=True)
    try:
        runs = load_runs(session)
        if runs.empty:
            raise StoreError(f"{store}: no runs to report; run a sweep first ('mosaic run CONFIG STORE')")
        params, results = load_params(session), load_results(session)
        counts = plots.status_counts(runs)
        best = plots.best_runs(runs, params, results)
        keys = [k for k in dict.fromkeys(best["dataset_key"]) if k != "(none)"]
        sections = []
        for key in keys:
            pair = [metaplot_chart_for(session, key, c, runs=runs, params=params, results=results)[0]
                    .properties(width=380, height=260) for c in ("test_loss", "overfit")]
            sections.append((key, alt.hconcat(*pair).resolve_scale(color="independent")))
        best_ids = [int(i) for i in best["best_run"].dropna()]
        curves, missing = loss_page_charts(session, best_ids, plot_size=3, runs=runs,
                                            title="Best run of each model") if best_ids else ([], [])
        history_notes = _history_note(session, missing)
        name = Path(session.path).name
        judged, why_not = _verdict_of(session)
        searched = read_search(session)
    finally:
        _close(session, store)
    summary = ", ".join(f"{n} {s}" for s, n in zip(counts["status"], counts["runs"], strict=True))
    headline = f"{len(runs)} runs: {summary}"
    answer = _verdict_charts(judged)
    if target.suffix.lower() == ".html":
        search: list[tuple[str, alt.TopLevelMixin | None]] = [(search_html(searched), None)] if searched else []
        blocks = _html_verdict(name, headline, judged, why_not, answer) + search + _html_blocks(best, sections, curves)
        atomic_write(target, html_page(f"Mosaic report — {name}", blocks))
        pages = 1
    else:
        title = f"Mosaic study report — {name}"
        verdict_page: alt.TopLevelMixin = alt.vconcat(*answer).properties(
            title=alt.TitleParams(title, subtitle=[headline, *(judged.method() if judged else [why_not])], anchor="start",
                                  fontSize=16)) if answer else plots.table_chart(pd.DataFrame({"verdict": [why_not]}), title, [headline])
        table = best.drop(columns=["pipeline"])
        first = plots.table_chart(table, "Best runs per model key and dataset key",
                                  [headline, "best run = lowest test_loss among done runs, per model key and dataset key"])
        charts = [verdict_page, *([search_chart(searched)] if searched else []), first, *(c.properties(title=f"Dataset key {k}") for k, c in sections), *curves]
        save_pages(charts, target)
        pages = len(charts)
    notes = [headline, f"{len(keys)} dataset key{'s' if len(keys) != 1 else ''}, "
                       f"{len(best_ids)} best run{'s' if len(best_ids) != 1 else ''} drawn"]
    notes.append(f"verdict: {', '.join(_best_models(judged))}" if judged else f"no verdict: {why_not}")
    notes += [searched.note()] if searched else []
    return PlotResult(target, pages, len(runs), (target,), tuple(notes + history_notes), what="runs")


def _verdict_of(session: Any) -> tuple[Verdict | None, str]:
    """The store's verdict (test_loss, default settings), or None and why there is none."""
    try:
        return verdict(session), ""
    except UsageError as exc:
        return None, str(exc)


def _verdict_charts(judged: Verdict | None) -> list[alt.FacetChart | alt.LayerChart]:
    if judged is None:
        return []
    charts: list[alt.FacetChart | alt.LayerChart] = [verdict_charts.interval_chart(judged.table, judged.metric)]
    if judged.across is not None:
        charts.append(verdict_charts.rank_chart(judged.across))
    return charts


def _best_models(judged: Verdict | None) -> list[str]:
    if judged is None:
        return []
    best = judged.table[judged.table["verdict"] == "best"]
    return [f"{m} best on {d}" for d, m in zip(best["dataset"], best["model"], strict=True)] or ["no best model yet"]


def _html_verdict(name: str, headline: str, judged: Verdict | None, why_not: str,
                  charts: list[alt.FacetChart | alt.LayerChart]) -> list[tuple[str, alt.TopLevelMixin | None]]:
    """The answer before the evidence: the verdict's words, its table and its charts."""
    head = f"<h1>Mosaic study report — {html.escape(name)}</h1>\n<p>{html.escape(headline)}</p>\n<h2>The verdict</h2>\n"
    if judged is None:
        return [(head + f"<p>No verdict: {html.escape(why_not)}</p>", None)]
    items = "".join(f"<li>{html.escape(line)}</li>" for line in judged.method())
    shown = judged.table.drop(columns=["diff_low", "diff_high"]).astype(object).map(plots.format_cell)
    table = shown.to_html(index=False, escape=True, border=0)
    blocks: list[tuple[str, alt.TopLevelMixin | None]] = [
        (head + f"<p><b>{html.escape('; '.join(_best_models(judged)))}</b></p>\n<ul>{items}</ul>\n" + table, None)]
    return blocks + [("", chart) for chart in charts]


def _html_blocks(best: pd.DataFrame, sections: list[tuple[str, alt.TopLevelMixin]],
                 curves: list[alt.FacetChart | alt.Chart]) -> list[tuple[str, alt.TopLevelMixin | None]]:
    cells = best.rename(columns={"best_run": "best run"}).astype(object).map(plots.format_cell)
    table = cells.to_html(index=False, escape=True, border=0)
    blocks: list[tuple[str, alt.TopLevelMixin | None]] = [(
        "<h2>Best runs per model key and dataset key</h2>\n"
        "<p>Best = lowest test_loss among done runs. Click a legend entry to highlight a model; "
        "hover a point for its run id and params.</p>\n" + table, None)]
    for key, chart in sections:
        blocks.append((f"<h2>Dataset key {html.escape(key)}</h2>", chart))
    if curves:
        blocks.append(("<h2>Loss curves of the best run of each model</h2>", curves[0]))
        blocks += [("", chart) for chart in curves[1:]]
    return blocks
