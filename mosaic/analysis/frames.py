"""The store's views as the DataFrames the plots and the verdict take (one reader call each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from mosaic.store.reader import open_reader
from mosaic.store.session import StoreSession


def load_runs(reader: Any) -> pd.DataFrame:
    """The latest runs with the columns the plots use (``run_id, status, pipeline, pipeline_json``)."""
    frame = open_reader(reader).runs().to_pandas()
    return frame.reindex(columns=["run_id", "status", "pipeline", "pipeline_json"])


def load_params(reader: Any, names: Sequence[str] = ()) -> pd.DataFrame:
    """Key params (``*_key``), ``pipeline``, ``status`` and the schemes (``data_scheme``,
    ``pipeline_scheme``: what a dataset and a model are) rows of ``params``, plus ``names``."""
    wanted = ["pipeline", "status", "data_scheme", "pipeline_scheme", *names]
    return open_reader(reader).params(names=wanted, keys=True).to_pandas()


def load_results(reader: Any, run_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The ``run_results`` view (optionally for some runs only)."""
    return open_reader(reader).results(run_ids).to_pandas()


def load_history(reader: Any, run_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The ``history`` view (optionally for some runs only)."""
    return open_reader(reader).history(run_ids).to_pandas()


def naming_params(session: StoreSession, with_pipeline: bool) -> pd.DataFrame:
    """The params that name a run's dataset and model (:func:`mosaic.analysis.plots.run_keys`):
    keys, schemes, and the pipeline JSON when runs lack it (a database of the original tool).
    In no particular order: one row per run and name, so none is needed, and the session
    skips the reader's sort."""
    names = ["data_scheme", "pipeline_scheme"] + (["pipeline"] if with_pipeline else [])
    listed = ", ".join(f"'{name}'" for name in names)
    return session.arrow(
        "SELECT run_id, param_name, param_value FROM params_text "
        f"WHERE param_name IN ({listed}) OR param_name LIKE '%\\_key' ESCAPE '\\'").to_pandas()
