"""The page and what it loads: the HTML shell (``static/page.html`` with ``static/live.js``
inlined), its Vega-Lite specs (built with Altair, with named data the page fills on every
refresh) and the Vega JavaScript bundle, taken from the installed ``vl-convert``: no CDN, the
page works offline.

Everything is built once per process, on first use (the bundle takes vl-convert about a
second), then served from memory, gzipped for clients that accept it.
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"
#: what the bundle leaves to the page's script
_GLOBALS = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"
#: the named datasets of the specs, filled by the page
CURVES = "curves"
RUN = "run"


@functools.lru_cache(maxsize=1)
def specs() -> dict[str, Any]:
    """The page's Vega-Lite specs: ``curves`` (mean and band per model, a panel per dataset)
    and ``run`` (one run's train and test loss)."""
    import altair as alt

    base = alt.Chart().encode(x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
                              color=alt.Color("model:N", title="model", legend=alt.Legend(
                                  labelLimit=240, symbolType="stroke", symbolStrokeWidth=3, symbolOpacity=1)))
    band = base.mark_area(opacity=0.15).encode(y=alt.Y("low:Q", title="loss"), y2="high:Q", detail="split:N")
    line = base.mark_line(point=False).encode(
        y=alt.Y("mean:Q", title="loss"), strokeDash=alt.StrokeDash("split:N", title="split", sort=["test", "train"]),
        tooltip=["model:N", "split:N", "epoch:Q", alt.Tooltip("mean:Q", format=".4g"), "n:Q"])
    curves = (alt.layer(band, line, data=alt.NamedData(CURVES)).properties(width=340, height=210)
              .facet(facet=alt.Facet("dataset:N", title=None, header=alt.Header(labelFontSize=13, labelFontWeight="bold")),
                     columns=2)
              .resolve_scale(y="independent", color="independent"))
    run = (alt.Chart(alt.NamedData(RUN)).mark_line(point=True)
           .encode(x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")), y=alt.Y("loss:Q", title="loss"),
                   color=alt.Color("split:N", title="split", sort=["train", "test"]),
                   tooltip=["split:N", "epoch:Q", alt.Tooltip("loss:Q", format=".4g")])
           .properties(width=420, height=220))
    return {CURVES: curves.to_dict(), RUN: run.to_dict()}


def _vl_version() -> str | None:
    """The Vega-Lite version of Altair's specs, when vl-convert bundles it."""
    import altair as alt
    import vl_convert

    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return wanted if wanted in vl_convert.get_vegalite_versions() else None


@functools.lru_cache(maxsize=1)
def vega_bundle() -> tuple[bytes, bytes]:
    """Vega, Vega-Lite and vega-embed as one script (``window.vega``, ``window.vegaEmbed``),
    plain and gzipped."""
    import vl_convert

    script = vl_convert.javascript_bundle(_GLOBALS, _vl_version()).encode("utf-8")
    return script, gzip.compress(script, 6)


@functools.lru_cache(maxsize=1)
def page() -> bytes:
    """The page: the HTML shell, its style, the app script and the specs, in one document."""
    html = (STATIC / "page.html").read_text(encoding="utf-8")
    script = (STATIC / "live.js").read_text(encoding="utf-8")
    # "</" cannot end the script element from inside a JSON string
    specs_json = json.dumps(specs(), separators=(",", ":")).replace("</", "<\\/")
    return html.replace("/*SPECS*/", specs_json).replace("/*SCRIPT*/", script).encode("utf-8")
