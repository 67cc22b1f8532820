"""``mosaic verdict``: which model is best on which dataset, and how sure, read from a store.

:func:`verdict` reads each done run's final value of a ``run_results`` column, names its
dataset and model by the one rule (:func:`mosaic.sweep.dataset_and_model`, through
:func:`mosaic.analysis.plots.run_keys`), and hands the numbers to
:mod:`mosaic.analysis.verdict`. The result renders as text that says which test, which
level, how many replicates and what ``tied`` means, or as CSV/JSON.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mosaic.analysis import plots
from mosaic.analysis import verdict as stats
from mosaic.analysis.frames import load_runs, naming_params
from mosaic.analysis.output import check_target, render_csv, render_table, write_output
from mosaic.errors import UsageError
from mosaic.store.reader import Reader, SessionReader, open_reader
from mosaic.store.session import StoreSession
from mosaic.store.status import RunStatus

FORMATS = ("table", "json", "csv")
#: run_results columns that are not metrics
_NOT_METRICS = ("run_id", "attempt")


def direction(metric: str, higher_is_better: bool | None) -> bool:
    """Whether higher values of ``metric`` are better: the flag when given, else lower for a
    name containing ``loss``, higher for one containing ``acc``; otherwise a UsageError."""
    if higher_is_better is not None:
        return higher_is_better
    name = metric.lower()
    if "loss" in name:
        return False
    if "acc" in name:
        return True
    raise UsageError(f"--metric {metric}: is a higher {metric} better or worse? "
                     "add --higher-is-better or --lower-is-better")


@dataclass(frozen=True)
class Verdict:
    """The verdict of a store: ``table`` (per dataset, :data:`mosaic.analysis.verdict.COLUMNS`),
    ``across`` (over datasets, or None) and how they were made."""

    store: Path
    metric: str
    higher_is_better: bool
    level: float
    rope: float | None
    seed: int
    table: pd.DataFrame
    across: pd.DataFrame | None
    left_out: dict[str, int] = field(default_factory=dict)
    resamples: int = stats.RESAMPLES

    def arrow(self) -> pa.Table:
        """The per-dataset table as Arrow (what the ``verdict`` SQL relation holds)."""
        return pa.Table.from_pandas(self.table, preserve_index=False)

    def across_arrow(self) -> pa.Table:
        """The across-datasets table as Arrow (empty with fewer than 2 datasets)."""
        frame = self.across if self.across is not None else pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in zip(stats.ACROSS_COLUMNS, ("str", "int64", "float64", "int64", "float64",
                                                                           "float64", "float64", "str"), strict=True)})
        return pa.Table.from_pandas(frame, preserve_index=False)

    def method(self) -> list[str]:
        """What the numbers are, in words a reader can check."""
        better = "higher" if self.higher_is_better else "lower"
        sizes = sorted(set(self.table["n"].tolist()))
        span = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
        lines = [
            f"metric: {self.metric} ({better} is better), each done run's final value; "
            f"{len(self.table)} (dataset, model) pairs from {int(self.table['n'].sum())} runs, {span} replicates each",
            f"interval: percentile bootstrap of the mean over replicates at level {self.level:g} "
            f"({self.resamples} resamples, seed {self.seed})",
            "best: the best mean among the models with at least "
            f"{stats.MIN_REPLICATES} replicates; p_vs_best: two-sided permutation test of the difference of "
            "means against it (exact when the splits are few), Holm-corrected within the dataset",
            f"tied: not distinguishable from the best at level {self.level:g} (not: shown equal)"
            if self.rope is None else
            f"tied: practically equivalent, the {self.level:g} interval of the difference within ±{self.rope:g}",
            f"inconclusive: too few replicates for the test to decide (fewer than {stats.MIN_REPLICATES}, "
            "or too few for a p below 1 - level after Holm); the note says how many to add",
        ]
        few = self.table[self.table["to_add"] > 0]
        if len(few):
            lines.append(f"too few replicates: {len(few)} of {len(self.table)} models cannot be judged yet; "
                         "to_add says how many more runs each needs (raise multiplicity, run again)")
        if self.across is not None:
            row = self.across.iloc[0]
            lines.append(f"across {int(row['datasets'])} datasets: average ranks, Friedman test p = "
                         f"{row['friedman_p']:.3g}, Nemenyi critical difference {row['critical_difference']:.3g} "
                         "(Demšar 2006); tied: within it of the best")
        lines += [f"left out: {reason}: {count}" for reason, count in self.left_out.items() if count]
        return lines

    def text(self) -> str:
        """The verdict for a terminal: method lines, the table per dataset, the table across datasets."""
        shown = self.table.drop(columns=["diff_low", "diff_high"])
        parts = ["\n".join(self.method()), "", render_table(pa.Table.from_pandas(shown, preserve_index=False))]
        if self.across is not None:
            parts += ["across datasets:", render_table(pa.Table.from_pandas(self.across, preserve_index=False))]
        return "\n".join(parts).rstrip("\n") + "\n"

    def json(self) -> str:
        """The verdict as one JSON object: ``method``, ``datasets`` (rows), ``across_datasets``."""
        def rows(frame: pd.DataFrame | None) -> list[dict[str, Any]] | None:
            if frame is None:
                return None
            return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]

        settings = {"metric": self.metric, "higher_is_better": self.higher_is_better, "level": self.level,
                    "rope": self.rope, "seed": self.seed, "resamples": self.resamples}
        body = {**settings, "method": self.method(), "datasets": rows(self.table), "across_datasets": rows(self.across)}
        return json.dumps(body, indent=1) + "\n"

    def render(self, format: str = "table") -> str:
        """The verdict as ``table`` (:meth:`text`), ``json`` (:meth:`json`) or ``csv`` (the per-dataset table)."""
        if format == "json":
            return self.json()
        if format == "csv":
            return render_csv(self.arrow())
        return self.text()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


def runs_frame(reader: Reader, metric: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per done run with a finite ``metric`` (``run_id, dataset, model, value``) and
    the runs left out, counted by reason."""
    results = reader.results().to_pandas()
    numeric = [c for c in results.columns if c not in _NOT_METRICS and pd.api.types.is_numeric_dtype(results[c])]
    if metric not in numeric:
        raise UsageError(f"--metric {metric}: not a numeric column of run_results; use one of: {', '.join(numeric)}")
    runs = load_runs(reader)
    keys = plots.run_keys(runs, _naming_params(reader, with_pipeline=bool(runs["pipeline_json"].isna().any())))
    done = keys[keys["status"] == RunStatus.DONE.value]
    values = pd.to_numeric(done["run_id"].map(results.set_index("run_id")[metric]), errors="coerce")
    finite = np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    frame = pd.DataFrame({"run_id": done["run_id"].to_numpy(), "dataset": done["dataset_key"].fillna("(none)").to_numpy(),
                          "model": done["model_key"].fillna("(none)").to_numpy(), "value": values.to_numpy(dtype=float)})
    stopped = int((keys["status"] == RunStatus.STOPPED.value).sum())  # a search cut them: not compared
    left = {"runs not done": int(len(keys) - len(done)) - stopped, "runs a search stopped": stopped,
            f"done runs without a finite {metric}": int((~finite).sum())}
    return frame[finite].reset_index(drop=True), left


def _naming_params(reader: Reader, with_pipeline: bool) -> pd.DataFrame:
    """The params that name a run's dataset and model (:func:`~mosaic.analysis.frames.naming_params`)."""
    if not isinstance(reader, SessionReader):
        names = ["data_scheme", "pipeline_scheme"] + (["pipeline"] if with_pipeline else [])
        return reader.params(names=names, keys=True).to_pandas()
    return naming_params(reader.session, with_pipeline)


def verdict(
    store: str | os.PathLike[str] | StoreSession | Reader,
    metric: str = "test_loss",
    higher_is_better: bool | None = None,
    level: float = 0.95,
    rope: float | None = None,
    seed: int = 0,
    format: str = "table",
    output: str | os.PathLike[str] | None = None,
) -> Verdict:
    """Which model is best on which dataset, and how sure (see :mod:`mosaic.analysis.verdict`).

    ``metric``: a numeric ``run_results`` column, each done run's final value; lower is
    better for a name with ``loss``, higher for ``acc``, else say with ``higher_is_better``.
    Datasets and models follow :func:`mosaic.sweep.dataset_and_model`; replicates are the
    done runs that share both. With ``output`` the verdict is also written there in
    ``format`` (``table``, ``json`` or ``csv``). The same store and seed give the same
    verdict, bit for bit.
    """
    if format not in FORMATS:
        raise UsageError(f"--format {format}: unknown; use one of {', '.join(FORMATS)}")
    target = Path(output) if output is not None else None
    reader = open_reader(store)
    try:
        if target is not None:
            check_target(target, reader.path if not reader.is_legacy else None)
        frame, left_out = runs_frame(reader, metric)
        path = Path(reader.path)
    finally:
        if reader is not store:
            reader.close()
    higher = direction(metric, higher_is_better)
    if frame.empty:
        raise UsageError(f"{path}: no done run has a {metric} value; nothing to compare yet "
                         "(see 'mosaic status')")
    table = stats.verdict_table(frame, metric, higher, level=level, rope=rope, seed=seed)
    result = Verdict(path, metric, higher, level, rope, seed, table, stats.across_datasets(table, higher, level), left_out)
    if target is not None:
        write_output(target, result.render(format))
    return result
