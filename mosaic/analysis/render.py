"""Writing charts to files: PDF/PNG/SVG with vl-convert (pages rendered in parallel child
processes, PDFs merged with pypdf) and self-contained interactive HTML.

Formats by extension: ``.pdf`` (pages merged), ``.png`` and ``.svg`` (one file per page
when there are several), ``.html`` (interactive, Vega libraries inlined so it opens offline).
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
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, cast

import altair as alt
import numpy as np
import pandas as pd

from mosaic.errors import UsageError
from mosaic.store.files import atomic_write

FORMATS = (".pdf", ".png", ".svg", ".html")
PathLike = str | os.PathLike[str]


@cache
def _vl_version() -> str | None:
    import vl_convert as vlc

    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return wanted if wanted in vlc.get_vegalite_versions() else None


def check_output(path: PathLike) -> Path:
    """The output path, checked: a known extension, in an existing folder (UsageError)."""
    out = Path(path)
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"{out}: unknown output format {out.suffix or '(none)'!r}; "
                         f"end the name in {', '.join(FORMATS)}")
    if not out.parent.is_dir():
        raise UsageError(f"{out}: folder {out.parent} does not exist; create it first")
    return out


def _spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    records = _plain_records(getattr(chart, "data", None))
    if records is not None:  # Altair converts (and hashes) a DataFrame cell by cell: 5x slower
        named = cast(alt.SchemaBase, chart).copy(deep=False)  # every chart is also a SchemaBase
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
    out = check_output(path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt == "html":
        return atomic_write(out, html_page(out.stem, [("", chart)]))
    return atomic_write(out, render_bytes(chart, fmt))


def save_pages(charts: Sequence[alt.TopLevelMixin], path: PathLike) -> list[Path]:
    """Write charts as pages: one merged PDF, one HTML page, or one PNG/SVG file per page.

    PNG/SVG pages are named ``<stem>-<n><ext>`` when there is more than one.
    """
    out = check_output(path)
    fmt = out.suffix.lower().lstrip(".")
    if not charts:
        raise UsageError(f"{out}: nothing to draw")
    if fmt == "html":
        return [atomic_write(out, html_page(out.stem, [("", c) for c in charts]))]
    pages = render_all(charts, fmt)
    if fmt == "pdf":
        return [atomic_write(out, merge_pdfs(pages))]
    if len(pages) == 1:
        return [atomic_write(out, pages[0])]
    width = len(str(len(pages)))
    return [atomic_write(out.with_name(f"{out.stem}-{i:0{width}d}{out.suffix}"), page)
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
    bundle = vlc.javascript_bundle(vl_version=version)  # type: ignore[call-arg]  # snippet=None at runtime; the stub says str
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, bundle)
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
