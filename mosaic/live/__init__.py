"""The live view: one page that shows a sweep's comparison while it trains (served by the
scheduler's Mosaic page) and any store afterwards (``mosaic ui``). Both pages are the same
page: one aggregation model, filled from two places.

- :mod:`~.curves`: loss curves in bounded memory (at most :data:`~.curves.POINTS` points);
- :mod:`~.board`: :class:`~.board.Board`, the aggregation model: per run a fixed-size state,
  per (dataset, model) counts, progress, best and mean metric and the mean curve with its band
  over replicates, kept up to date event by event (or loaded in bulk from a store);
- :mod:`~.views`: the bounded JSON the page asks for (the summary, a page of runs, one run);
- :mod:`~.judge`: the verdict so far, computed off the request path, at a bounded rate;
- :mod:`~.api`: the page's routes, answered the same way by both servers;
- :mod:`~.assets`: the page itself, its Vega-Lite specs (Altair) and the Vega JavaScript
  taken from the installed ``vl-convert`` (no CDN: it works offline);
- :mod:`~.from_store`: a board filled from a store through DuckDB;
- :mod:`~.server`: ``mosaic ui``, the standard library's ``ThreadingHTTPServer`` over a store.

The scheduler side (:mod:`mosaic.exec.cluster.page`) imports :mod:`~.board`, :mod:`~.views`,
:mod:`~.judge`, :mod:`~.api` and :mod:`~.assets`; they import neither torch, ``distributed``
nor ``tornado``, nor DuckDB at module level.

It may import :mod:`mosaic.store`, :mod:`mosaic.sweep`, :mod:`mosaic.text` and
:mod:`mosaic.errors`; for the verdict's statistics and the one rule naming a store's datasets
and models, :mod:`mosaic.analysis.verdict`, :mod:`mosaic.analysis.plots` and :mod:`mosaic.analysis.frames`, inside functions
only (the scheduler loads them when a verdict is due); never :mod:`mosaic.exec` (the cluster
side translates its events into the board's calls).
"""
