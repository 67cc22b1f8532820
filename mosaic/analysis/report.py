"""plotloss, metaplot and the study report; the one module that writes charts to files.

Data comes from the SQL views of :func:`mosaic.analysis.sql.open_store` (a store folder,
or a database of the original tool plus its run-files folder); the numbers and charts
come from :mod:`mosaic.analysis.plots`. Formats by extension: ``.pdf`` (vl-convert; pages
merged with pypdf), ``.png``, ``.svg`` (vl-convert; one file per page when there are
several) and ``.html`` (interactive, Vega libraries inlined so it opens offline).
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from mosaic.analysis import plots
from mosaic.errors import SelectionError, StoreError, UsageError

FORMATS = (".pdf", ".png", ".svg", ".html")
PathLike = str | os.PathLike[str]


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


# -- writing charts --------------------------------------------------------------------------
@cache
def _vl_version() -> str | None:
    import vl_convert as vlc

    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return wanted if wanted in vlc.get_vegalite_versions() else None


def _output(path: PathLike) -> Path:
    out = Path(path)
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"{out}: unknown output format {out.suffix or '(none)'!r}; "
                         f"end the name in {', '.join(FORMATS)}")
    if not out.parent.is_dir():
        raise UsageError(f"{out}: folder {out.parent} does not exist; create it first")
    return out


def _atomic_write(target: Path, data: bytes | str) -> Path:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    records = _plain_records(getattr(chart, "data", None))
    if records is not None:  # Altair converts (and hashes) a DataFrame cell by cell: 5x slower
        named = chart.copy(deep=False)
        named.data = alt.NamedData(name="data-mosaic")
        spec = named.to_dict(validate=False)
        spec["datasets"] = {**spec.get("datasets", {}), "data-mosaic": records}
        return spec
    with alt.data_transformers.disable_max_rows():
        return chart.to_dict(validate=False)


def _plain_records(data: Any) -> list[dict[str, Any]] | None:
    """A DataFrame of numbers, booleans and strings as the rows Altair would inline (NaN and
    infinities as null); None for anything else (Altair then converts it)."""
    if not isinstance(data, pd.DataFrame) or not len(data.columns) or not data.columns.is_unique:
        return None
    columns = []
    for name in data.columns:
        column = data[name]
        kind = column.dtype.kind
        if kind in "iub":
            columns.append(column.tolist())
        elif kind == "f":
            values = column.to_numpy(dtype=float)
            listed = values.tolist()
            if not np.isfinite(values).all():
                listed = [v if math.isfinite(v) else None for v in listed]
            columns.append(listed)
        elif kind == "O" and pd.api.types.infer_dtype(column, skipna=False) == "string":
            columns.append(column.tolist())
        else:
            return None
    names = [str(name) for name in data.columns]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def render_bytes(chart: alt.TopLevelMixin | dict[str, Any], fmt: str) -> bytes:
    """One chart (or Vega-Lite spec) as ``pdf``, ``png`` or ``svg`` bytes (vl-convert, no browser)."""
    import vl_convert as vlc

    spec = chart if isinstance(chart, dict) else _spec(chart)
    if fmt == "pdf":
        return vlc.vegalite_to_pdf(spec, vl_version=_vl_version())
    if fmt == "png":
        return vlc.vegalite_to_png(spec, vl_version=_vl_version(), scale=2)
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec, vl_version=_vl_version()).encode()
    raise UsageError(f"cannot render {fmt!r}; use pdf, png or svg")


#: pages per extra render process, at least (a process costs ~0.5 s to start vl-convert)
PAGES_PER_PROCESS = 4
_CHILD = """import json, sys, vl_convert as vlc
job = json.load(open(sys.argv[1]))
for index, spec in job["specs"]:
    if job["fmt"] == "pdf": data = vlc.vegalite_to_pdf(spec, vl_version=job["version"])
    elif job["fmt"] == "png": data = vlc.vegalite_to_png(spec, vl_version=job["version"], scale=2)
    else: data = vlc.vegalite_to_svg(spec, vl_version=job["version"]).encode()
    open(f"{job['out']}/{index}.part", "wb").write(data)
"""


def render_all(charts: Sequence[alt.TopLevelMixin], fmt: str, processes: int | None = None) -> list[bytes]:
    """Render many charts, in parallel on several cores.

    vl-convert serialises conversions within one process, so pages are dealt round-robin
    to this process and ``processes - 1`` short-lived ``python -c`` children (plain
    subprocesses: the caller's ``__main__`` is never re-imported). Default: one process
    per available core, at most one per :data:`PAGES_PER_PROCESS` pages. A child that
    fails has its pages rendered here instead.
    """
    specs = [_spec(c) for c in charts]
    if processes is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        processes = min(cores, len(specs) // PAGES_PER_PROCESS)
    if processes <= 1:
        return [render_bytes(spec, fmt) for spec in specs]
    out: dict[int, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="mosaic-render-") as tmp:
        children = []
        for worker in range(1, processes):
            job = Path(tmp) / f"job{worker}.json"
            mine = [(i, specs[i]) for i in range(worker, len(specs), processes)]
            job.write_text(json.dumps({"fmt": fmt, "version": _vl_version(), "out": tmp, "specs": mine}))
            try:
                child = subprocess.Popen([sys.executable, "-c", _CHILD, str(job)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except OSError:  # no usable interpreter (embedded Python): render here
                child = None
            children.append((mine, child))
        try:
            for i in range(0, len(specs), processes):
                out[i] = render_bytes(specs[i], fmt)
            for mine, child in children:
                ok = child is not None and child.wait() == 0
                for i, spec in mine:
                    part = Path(tmp) / f"{i}.part"
                    out[i] = part.read_bytes() if ok and part.is_file() else render_bytes(spec, fmt)
        finally:  # interrupted: stop the children we started
            for _, child in children:
                if child is not None and child.poll() is None:
                    child.kill()
                    child.wait()
    return [out[i] for i in range(len(specs))]


def merge_pdfs(pages: Sequence[bytes]) -> bytes:
    """Concatenate one-page (or more) PDF documents into one."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in pages:
        writer.append(PdfReader(io.BytesIO(page)))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def save_chart(chart: alt.TopLevelMixin, path: PathLike) -> Path:
    """Write one chart; the format follows the extension (.pdf, .png, .svg, .html)."""
    out = _output(path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt == "html":
        return _atomic_write(out, html_page(out.stem, [("", chart)]))
    return _atomic_write(out, render_bytes(chart, fmt))


def save_pages(charts: Sequence[alt.TopLevelMixin], path: PathLike) -> list[Path]:
    """Write charts as pages: one merged PDF, one HTML page, or one PNG/SVG file per page.

    PNG/SVG pages are named ``<stem>-<n><ext>`` when there is more than one.
    """
    out = _output(path)
    fmt = out.suffix.lower().lstrip(".")
    if not charts:
        raise UsageError(f"{out}: nothing to draw")
    if fmt == "html":
        return [_atomic_write(out, html_page(out.stem, [("", c) for c in charts]))]
    pages = render_all(charts, fmt)
    if fmt == "pdf":
        return [_atomic_write(out, merge_pdfs(pages))]
    if len(pages) == 1:
        return [_atomic_write(out, pages[0])]
    width = len(str(len(pages)))
    return [_atomic_write(out.with_name(f"{out.stem}-{i:0{width}d}{out.suffix}"), page)
            for i, page in enumerate(pages, 1)]


_HTML = """<!DOCTYPE html>
<html>
<head>
<meta charset="UTF-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }}
th {{ background: #f4f4f4; }}
.chart {{ margin: 1.5em 0; }}
</style>
<script type="text/javascript">
{bundle}
</script>
</head>
<body>
{body}
<script type="text/javascript">
const specs = {specs};
for (const [id, spec] of Object.entries(specs)) {{
  vegaEmbed("#" + id, spec, {{"mode": "vega-lite"}}).catch(console.error);
}}
</script>
</body>
</html>
"""


@cache
def javascript_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script (vl-convert), cached on disk.

    Bundling takes seconds, so the bundle is kept in ``$XDG_CACHE_HOME/mosaic`` (default
    ``~/.cache/mosaic``), keyed by the vl-convert and Vega-Lite versions; an unwritable
    cache only costs the time.
    """
    import vl_convert as vlc

    version = _vl_version()
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mosaic"
    path = folder / f"vega-embed-vlc{getattr(vlc, '__version__', 'x')}-vl{version or 'latest'}.js"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle = vlc.javascript_bundle(vl_version=version)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, bundle)
    except OSError:
        pass
    return bundle


def html_page(title: str, blocks: Sequence[tuple[str, alt.TopLevelMixin | None]]) -> str:
    """A self-contained HTML page (opens offline): each block is (HTML text, chart or None)."""
    body, specs = [], {}
    for index, (text, chart) in enumerate(blocks):
        if text:
            body.append(text)
        if chart is not None:
            specs[f"chart{index}"] = _spec(chart)
            body.append(f'<div class="chart" id="chart{index}"></div>')
    return _HTML.format(
        title=html.escape(title),
        bundle=javascript_bundle(),
        body="\n".join(body),
        specs=json.dumps(specs, allow_nan=False).replace("</", "<\\/"),
    )


# -- reading the views --------------------------------------------------------------------
def _open(store: Any, run_files: PathLike | None, need_history: bool = False) -> Any:
    """A session on ``store`` (returned as is when it is one already).

    For a database of the original tool given without ``run_files``, plots that need
    histories look for the run-files folder its ``run_files_path`` param names (relative
    to the database's folder), as the original's own commands would have.
    """
    if hasattr(store, "sql"):
        return store
    from mosaic.analysis.sql import open_store

    session = open_store(store, run_files=run_files)
    if not (need_history and run_files is None and getattr(session, "is_legacy", False)):
        return session
    named = _frame(session, "SELECT DISTINCT param_value FROM params WHERE param_name = 'run_files_path'")
    for value in named["param_value"].dropna():
        folder = Path(str(value)).expanduser()
        folder = folder if folder.is_absolute() else Path(store).resolve().parent / folder
        if folder.is_dir():
            session.close()
            return open_store(store, run_files=folder)
    return session


def _history_note(session: Any, missing: Sequence[int]) -> list[str]:
    if not missing:
        return []
    note = f"no loss history for run{'s' if len(missing) > 1 else ''} {_id_list(missing)}"
    if getattr(session, "is_legacy", False):
        note += " (for a database of the original tool, give its run-files folder)"
    return [note]


def _close(session: Any, store: Any) -> None:
    if session is not store and hasattr(session, "close"):
        session.close()


def _ids_sql(run_ids: Sequence[int] | None) -> str:
    return "" if run_ids is None else f" WHERE run_id IN ({', '.join(str(int(i)) for i in run_ids) or 'NULL'})"


def _frame(session: Any, query: str) -> pd.DataFrame:
    return session.sql(query).df()


def load_runs(session: Any) -> pd.DataFrame:
    """The ``runs`` view with the columns the plots use (``run_id, status, pipeline, pipeline_json``)."""
    frame = _frame(session, "SELECT * FROM runs ORDER BY run_id")
    return frame.reindex(columns=["run_id", "status", "pipeline", "pipeline_json"])


def load_params(session: Any, names: Sequence[str] = ()) -> pd.DataFrame:
    """Key params (``*_key``), ``pipeline`` and ``status`` rows of ``params``, plus ``names``."""
    wanted = ", ".join("'" + n.replace("'", "''") + "'" for n in ("pipeline", "status", *names))
    return _frame(session, "SELECT run_id, param_name, CAST(param_value AS VARCHAR) AS param_value FROM params "
                           f"WHERE param_name LIKE '%\\_key' ESCAPE '\\' OR param_name IN ({wanted})")


def load_results(session: Any, run_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The ``run_results`` view (optionally for some runs only)."""
    return _frame(session, f"SELECT * FROM run_results{_ids_sql(run_ids)}")


def load_history(session: Any, run_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The ``history`` view (optionally for some runs only)."""
    return _frame(session, f"SELECT * FROM history{_ids_sql(run_ids)}")


# -- plotloss --------------------------------------------------------------------------------
def loss_page_charts(
    session: Any, run_ids: Sequence[int], plot_size: int = 2, log_scale: bool = False,
    runs: pd.DataFrame | None = None, title: str = "Loss curves",
) -> tuple[list[alt.FacetChart], list[int]]:
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
    charts: list[alt.FacetChart] = []
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


def _select(session: Any, selection: Any) -> list[int]:
    """All runs when ``selection`` is None; otherwise the selection's runs (ids that are
    not in the store are a SelectionError naming them, from :func:`select_runs`)."""
    if selection is None:
        ids = sorted(int(i) for i in _frame(session, "SELECT run_id FROM runs")["run_id"])
        if not ids:
            raise SelectionError(f"{session.path}: no runs yet; run a sweep first ('mosaic run CONFIG STORE')")
        return ids
    from mosaic.analysis.selection import select_runs

    return [int(i) for i in select_runs(session, selection)]


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
    target = _output(out)
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
                       results: pd.DataFrame | None = None) -> tuple[alt.LayerChart, pd.DataFrame]:
    """The metaplot chart of an open store and the per-run points behind it."""
    plots.check_criterion(criterion)
    runs = load_runs(session) if runs is None else runs
    params = load_params(session, [group_by] if group_by else []) if params is None else params
    results = load_results(session) if results is None else results
    points = plots.metaplot_points(runs, params, results, dataset_key, criterion, group_by=group_by)
    chart = plots.metaplot_chart(points, criterion, dataset_key, group_title=group_by or "model")
    return chart, points


def metaplot(store: Any, out: PathLike, dataset_key: str, criterion: str, group_by: str | None = None,
             run_files: PathLike | None = None) -> PlotResult:
    """CRITERION against nb_params for the runs of DATASET_KEY, one line per model.

    Lines are grouped by the model type's key (or param ``group_by``); each point is the
    mean over replicates with a ±std band; x is logarithmic when nb_params spans more
    than a decade. Failed runs are left out and counted on the chart and in the result.
    """
    target = _output(out)
    plots.check_criterion(criterion)
    session = _open(store, run_files)
    try:
        chart, points = metaplot_chart_for(session, dataset_key, criterion, group_by)
    finally:
        _close(session, store)
    save_chart(chart, target)
    kept = points[points["included"]]
    notes = [f"{criterion} vs nb_params for dataset key {dataset_key}: {kept['group'].nunique()} lines",
             *plots.left_out(points)]
    return PlotResult(target, 1, len(kept), (target,), tuple(notes))


# -- report ----------------------------------------------------------------------------------
def report(store: Any, out: PathLike, run_files: PathLike | None = None) -> PlotResult:
    """The study report: sweep summary and best runs, metaplots of test_loss and overfit per
    dataset key, and the loss curves of the best run of each model.

    ``.html`` is interactive (tooltips with run id and params, click a legend entry to
    highlight a model); ``.pdf`` has a summary page, a page per dataset key, then the loss
    curve pages.
    """
    target = _output(out)
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
        name = Path(getattr(session, "path", store)).name
    finally:
        _close(session, store)
    summary = ", ".join(f"{n} {s}" for s, n in zip(counts["status"], counts["runs"], strict=True))
    headline = f"{len(runs)} runs: {summary}"
    if target.suffix.lower() == ".html":
        blocks = _html_blocks(name, headline, best, sections, curves)
        _atomic_write(target, html_page(f"Mosaic report — {name}", blocks))
        pages = 1
    else:
        table = best.drop(columns=["pipeline"])
        first = plots.table_chart(table, f"Mosaic study report — {name}",
                                  [headline, "best run = lowest test_loss among done runs, per model key and dataset key"])
        charts = [first, *(c.properties(title=f"Dataset key {k}") for k, c in sections), *curves]
        save_pages(charts, target)
        pages = len(charts)
    notes = [headline, f"{len(keys)} dataset key{'s' if len(keys) != 1 else ''}, "
                       f"{len(best_ids)} best run{'s' if len(best_ids) != 1 else ''} drawn"]
    return PlotResult(target, pages, len(runs), (target,), tuple(notes + history_notes), what="runs")


def _html_blocks(name: str, headline: str, best: pd.DataFrame,
                 sections: list[tuple[str, alt.TopLevelMixin]],
                 curves: list[alt.FacetChart]) -> list[tuple[str, alt.TopLevelMixin | None]]:
    cells = best.rename(columns={"best_run": "best run"}).astype(object).map(plots.format_cell)
    table = cells.to_html(index=False, escape=True, border=0)
    blocks: list[tuple[str, alt.TopLevelMixin | None]] = [(
        f"<h1>Mosaic study report — {html.escape(name)}</h1>\n<p>{html.escape(headline)}</p>\n"
        "<h2>Best runs per model key and dataset key</h2>\n"
        "<p>Best = lowest test_loss among done runs. Click a legend entry to highlight a model; "
        "hover a point for its run id and params.</p>\n" + table, None)]
    for key, chart in sections:
        blocks.append((f"<h2>Dataset key {html.escape(key)}</h2>", chart))
    if curves:
        blocks.append(("<h2>Loss curves of the best run of each model</h2>", curves[0]))
        blocks += [("", chart) for chart in curves[1:]]
    return blocks
