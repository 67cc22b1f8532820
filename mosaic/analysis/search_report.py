"""The report's Search section: what a search strategy (``[SEARCH] strategy = halving``) trained
against the full grid, and which pipelines it stopped where and why.

:func:`search_summary` computes the section from a store's decisions (numbers only, tested on
values); :func:`search_html` and :func:`search_chart` draw it for the HTML and the PDF report
(:mod:`mosaic.analysis.report` writes the files).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

from mosaic.analysis import plots
from mosaic.search.decisions import Effort, read_effort, stopped_pipelines
from mosaic.store.reader import Reader, SessionReader

#: the columns of the stopped pipelines' table
COLUMNS = ["dataset", "model", "stopped at epoch", "runs", "reason"]


@dataclass(frozen=True)
class SearchSummary:
    """The epochs a search trained against a full grid's, and the pipelines it stopped
    (:data:`COLUMNS`, in the order they were stopped: rung, then rank)."""

    effort: Effort
    stopped: pd.DataFrame

    def lines(self) -> list[str]:
        """The section in words: epochs, then the stops."""
        e = self.effort
        return [f"epochs: {e.trained} trained; a full grid plans {e.planned}; the stops saved {e.saved} "
                f"({e.saved_percent:.1f}%)",
                f"stopped: {len(self.stopped)} of {e.pipelines} pipelines ({e.at_rungs()}); a stopped run keeps "
                "its history and checkpoint and can be continued ('mosaic promote')"]

    def note(self) -> str:
        """One line for the terminal."""
        e = self.effort
        return f"search: {len(self.stopped)} of {e.pipelines} pipelines stopped, {e.saved} of {e.planned} planned epochs saved"


def search_summary(rows: Iterable[dict[str, Any]], effort: Effort) -> SearchSummary:
    """The Search section of the decisions ``rows`` (:func:`mosaic.search.decisions.read_effort`)."""
    stopped = [{"dataset": s.dataset, "model": s.model, "stopped at epoch": s.rung,
                "runs": ", ".join(map(str, s.runs)), "reason": s.reason} for s in stopped_pipelines(rows)]
    return SearchSummary(effort, pd.DataFrame(stopped, columns=COLUMNS))


def read_search(reader: Reader) -> SearchSummary | None:
    """The Search section of the store ``reader`` reads; None when it has no search decisions
    (a full grid, a database of the original tool)."""
    if reader.is_legacy:
        return None
    searched = read_effort(reader.session if isinstance(reader, SessionReader) else reader.path)
    return search_summary(*searched) if searched is not None else None


def search_html(summary: SearchSummary) -> str:
    """The section for the HTML report: its words and the table of stopped pipelines."""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary.lines())
    table = summary.stopped.astype(object).map(plots.format_cell).to_html(index=False, escape=True, border=0)
    return f"<h2>Search</h2>\n<ul>{items}</ul>\n" + (table if len(summary.stopped) else "<p>No pipeline stopped.</p>")


def search_chart(summary: SearchSummary) -> alt.LayerChart:
    """The section as a PDF page: the table of stopped pipelines under its words."""
    table = summary.stopped if len(summary.stopped) else pd.DataFrame({"stopped": ["no pipeline stopped"]})
    return plots.table_chart(table, "Search: the pipelines stopped, where and why", summary.lines())
