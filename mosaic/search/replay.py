"""``mosaic replay``: what successive halving would have decided on a finished full-grid store.

The rungs are replayed by :class:`mosaic.search.halving.Halving` itself, the state machine a
halving sweep runs, fed with each run's recorded history as if its tasks had just ended: the
same cuts (:func:`~mosaic.search.halving.judge`), dataset by dataset, at the same rung
epochs, with the same ties and the same treatment of runs that failed or ended early (they
leave the competition at their last epoch). The replay then counts the epochs halving would
have trained against the grid's (the history rows), and checks the verdict
(:func:`mosaic.analysis.compare.verdict` on the same metric): would the models it calls
``best`` or ``tied`` have survived to the last epoch? Where no model has a verdict (too few
replicates), the model with the best mean stands in, marked ``inconclusive``.

A replay needs the full grid: a store with ``stopped`` runs (a halving sweep) is refused, as
their histories end at the rung that stopped them and later rungs could not be judged on
them (``mosaic status`` and ``mosaic report`` show that sweep's own decisions); so is a store
with unfinished runs (``mosaic resume`` finishes them).
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from mosaic import schemas
from mosaic.analysis import plots
from mosaic.analysis.compare import verdict
from mosaic.analysis.frames import load_params
from mosaic.analysis.output import check_target, render_csv, render_table, write_output
from mosaic.errors import StoreError, UsageError
from mosaic.search.decisions import Effort, effort
from mosaic.search.halving import Cut, Entrant, Halving
from mosaic.search.spec import HALVING, SearchSpec
from mosaic.store.reader import Reader, open_reader
from mosaic.store.status import RESUMABLE, RunStatus

FORMATS = ("table", "json", "csv")
#: the history columns a rung can be judged on: those ``[SEARCH] metric`` accepts
METRICS: tuple[str, ...] = tuple(schemas.config_keys("SEARCH")["metric"]["choices"])
#: the verdicts whose models a replay must keep
_KEPT_VERDICTS = ("best", "tied")


@dataclass(frozen=True)
class Survival:
    """A model the verdict calls best (or tied with it) on a dataset, and where halving would
    have stopped it (``stopped_at``: the rung epoch; None: it trains to the last epoch)."""

    dataset: str
    model: str
    verdict: str
    stopped_at: int | None

    @property
    def survived(self) -> bool:
        """True when halving would have trained it to the last epoch."""
        return self.stopped_at is None

    def row(self) -> dict[str, Any]:
        """As a JSON object."""
        return {"dataset": self.dataset, "model": self.model, "verdict": self.verdict,
                "survived": self.survived, "stopped_at": self.stopped_at}


@dataclass(frozen=True)
class Replay:
    """What halving would have decided on a full-grid store.

    ``cuts``: every decision, as a halving sweep writes them (rung by rung, best first);
    ``stopped``: run id -> the rung epoch that stops it; ``effort``: ``planned`` is the epochs
    the grid trained (its history rows), ``trained`` what halving would have trained;
    ``survival``: the verdict's best (and tied) models, each with its fate; ``no_verdict``:
    why there is no verdict to check (empty when there is one).
    """

    store: Path
    spec: SearchSpec
    runs: int
    epochs: tuple[int, ...]
    cuts: tuple[Cut, ...]
    stopped: Mapping[int, int]
    effort: Effort
    survival: tuple[Survival, ...]
    no_verdict: str = ""

    @property
    def rungs(self) -> tuple[int, ...]:
        """The rung epochs of the replay (of every run's planned epochs)."""
        return tuple(sorted({rung for total in self.epochs for rung in self.spec.rungs(total)}))

    @property
    def lost(self) -> list[Survival]:
        """The verdict's best and tied models that halving would have stopped."""
        return [s for s in self.survival if not s.survived]

    @property
    def best_survived(self) -> bool:
        """Whether every model the verdict calls best (or the best mean) would have survived."""
        return all(s.survived for s in self.survival if s.verdict != "tied")

    def rung_table(self) -> pa.Table:
        """One row per dataset and rung: pipelines judged, kept and stopped models (best first)."""
        groups: dict[tuple[str, int], list[Cut]] = collections.defaultdict(list)
        for cut in self.cuts:
            groups[(cut.dataset, cut.rung)].append(cut)
        rows = [{"dataset": dataset, "rung": rung, "pipelines": len(cuts),
                 "kept": ", ".join(c.model for c in cuts if c.kept),
                 "stopped": ", ".join(c.model for c in cuts if not c.kept)}
                for (dataset, rung), cuts in groups.items()]
        return pa.Table.from_pylist(rows, schema=pa.schema([("dataset", pa.string()), ("rung", pa.int64()),
                                                            ("pipelines", pa.int64()), ("kept", pa.string()),
                                                            ("stopped", pa.string())]))

    def decisions(self) -> pa.Table:
        """The cuts as ``decisions`` rows (what a halving sweep would have written)."""
        names = ["dataset", "model", "rung", "runs", "metric", "value", "cutoff", "kept", "rank", "pipelines", "reason"]
        rows = [cut.row() for cut in self.cuts]
        return pa.table({name: [row[name] for row in rows] for name in names}) if rows else pa.table(
            {name: pa.array([], pa.string()) for name in names})

    def method(self) -> list[str]:
        """What was replayed, in words."""
        better = "higher" if self.spec.higher_is_better else "lower"
        epochs = ", ".join(map(str, sorted(set(self.epochs))))
        rungs = ", ".join(map(str, self.rungs))
        datasets = len({c.dataset for c in self.cuts})
        return [
            f"replay of successive halving on {self.store}: mean {self.spec.metric} of each pipeline's replicates "
            f"at each rung ({better} is better), reduction factor {self.spec.reduction_factor}, "
            f"min_epochs {self.spec.min_epochs}",
            f"{self.runs} runs of {epochs} epochs, {self.effort.pipelines} pipelines in {datasets} "
            f"dataset{'s' if datasets != 1 else ''}; rungs at epoch{'s' if len(self.rungs) != 1 else ''} {rungs}",
        ]

    def totals(self) -> list[str]:
        """The epochs and the stops, in words."""
        e = self.effort
        return [f"epochs: {e.planned} trained by the grid, {e.trained} by halving: {e.saved} saved "
                f"({e.saved_percent:.1f}%)",
                f"stopped: {sum(e.stopped.values())} of {e.pipelines} pipelines ({e.at_rungs()})"]

    def conclusion(self) -> str:
        """One line: did the verdict's best survive?"""
        if self.no_verdict:
            return f"no verdict to check: {self.no_verdict}"
        if self.best_survived:
            return "the verdict's best survived halving on every dataset"
        lost = [s for s in self.lost if s.verdict != "tied"]
        return "halving would have stopped the verdict's best: " + "; ".join(
            f"{s.model} on {s.dataset} at epoch {s.stopped_at}" for s in lost)

    def text(self) -> str:
        """For a terminal: what was replayed, the rungs, the totals, the verdict check."""
        parts = [*self.method(), "", render_table(self.rung_table()).rstrip("\n"), "", *self.totals(), ""]
        if self.survival:
            parts += [f"the verdict ({self.spec.metric}, each done run's final value) against the replay:",
                      render_table(_survival_table(self.survival)).rstrip("\n")]
        parts.append(self.conclusion())
        return "\n".join(parts) + "\n"

    def json(self) -> str:
        """One JSON object: the settings, the epochs, the decisions and the verdict check."""
        e = self.effort
        body = {
            "store": str(self.store), "metric": self.spec.metric, "higher_is_better": self.spec.higher_is_better,
            "reduction_factor": self.spec.reduction_factor, "min_epochs": self.spec.min_epochs, "runs": self.runs,
            "pipelines": e.pipelines, "rungs": list(self.rungs),
            "epochs": {"grid": e.planned, "halving": e.trained, "saved": e.saved,
                       "saved_percent": round(e.saved_percent, 2)},
            "stopped": {str(rung): count for rung, count in sorted(e.stopped.items())},
            "best_survived": None if self.no_verdict else self.best_survived,
            "verdict": [s.row() for s in self.survival], "no_verdict": self.no_verdict or None,
            "method": self.method(), "decisions": [cut.row() for cut in self.cuts],
        }
        return json.dumps(body, indent=1) + "\n"

    def render(self, format: str = "table") -> str:
        """``table`` (:meth:`text`), ``json`` (:meth:`json`) or ``csv`` (the decisions)."""
        if format == "json":
            return self.json()
        if format == "csv":
            return render_csv(self.decisions())
        return self.text()


def _survival_table(survival: Sequence[Survival]) -> pa.Table:
    rows = [{"dataset": s.dataset, "model": s.model,
             "verdict": s.verdict if s.verdict != "inconclusive" else "inconclusive (best mean)",
             "halving": "survived to the last epoch" if s.survived else f"stopped at epoch {s.stopped_at}"}
            for s in survival]
    return pa.Table.from_pylist(rows)


# -- reading the store ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Grid:
    """The runs of a store as a replay needs them: labels, planned epochs, histories."""

    entrants: list[Entrant]
    histories: dict[int, list[dict[str, Any]]]


def _check(format: str, reduction_factor: int, min_epochs: int, metric: str) -> None:
    if format not in FORMATS:
        raise UsageError(f"--format {format}: unknown; use one of {', '.join(FORMATS)}")
    if reduction_factor < 2:
        raise UsageError(f"--reduction-factor {reduction_factor}: halving keeps 1/reduction_factor of the "
                         "pipelines at each rung, so it must be 2 or more (default 3)")
    if min_epochs < 1:
        raise UsageError(f"--min-epochs {min_epochs}: the first rung is an epoch; use 1 or more (default 1)")
    if metric not in METRICS:
        raise UsageError(f"--metric {metric}: a rung is judged on a history column; use one of {', '.join(METRICS)}")


def _grid(reader: Reader, metric: str) -> _Grid:
    """The runs of a finished full grid, or a StoreError saying why the store is not one."""
    runs = reader.runs().to_pandas()
    if runs.empty:
        raise StoreError(f"{reader.path}: no runs to replay; run a full grid first ('mosaic run CONFIG STORE')")
    statuses = collections.Counter(str(s) for s in runs["status"])
    if stopped := statuses[RunStatus.STOPPED.value]:
        raise StoreError(f"{reader.path}: {stopped} runs were stopped by a search: replay needs "
                         "a full grid (every run trained to its planned epochs); 'mosaic status' and "
                         "'mosaic report' show this sweep's own decisions")
    if unfinished := sum(statuses[s] for s in RESUMABLE):  # a replay needs every run finished
        raise StoreError(f"{reader.path}: {unfinished} runs have not finished: replay a finished sweep; "
                         f"'mosaic resume {reader.path}' trains them to their planned epochs")
    history = reader.history().select(["run_id", "epoch", metric]).to_pydict()
    if not history["run_id"]:
        raise StoreError(f"{reader.path}: no run has a loss history; replay judges the runs at their rung epochs")
    histories: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for run_id, epoch, value in zip(history["run_id"], history["epoch"], history[metric], strict=True):
        rows = histories[int(run_id)]
        if epoch == len(rows) + 1:  # rows come by run, then epoch; a gap ends what can be judged
            rows.append({"epoch": epoch, metric: value})
    keys = plots.run_keys(runs.reindex(columns=["run_id", "status", "pipeline", "pipeline_json"]), load_params(reader))
    labels = dict(zip(keys["run_id"].tolist(), zip(keys["dataset_key"].fillna("(none)").tolist(),
                                                    keys["model_key"].fillna("(none)").tolist(), strict=True),
                      strict=True))
    entrants = []
    planned = runs["planned_epochs"] if "planned_epochs" in runs else pd.Series(None, index=runs.index)
    for run_id, epochs in zip(runs["run_id"].astype(int).tolist(), planned.tolist(), strict=True):
        dataset, model = labels.get(run_id, ("(none)", "(none)"))
        total = int(epochs) if pd.notna(epochs) and epochs else len(histories.get(run_id, ()))
        entrants.append(Entrant(run_id, str(dataset), str(model), total))
    return _Grid(entrants, dict(histories))


# -- the replay ----------------------------------------------------------------------------------
def replay_cuts(spec: SearchSpec, entrants: Sequence[Entrant],
                histories: Mapping[int, Sequence[Mapping[str, Any]]]) -> tuple[list[Cut], dict[int, int]]:
    """Run :class:`Halving` over recorded ``histories`` (run id -> every epoch, in order): each
    run's task ends at its next rung with the history up to there. Returns the cuts in the
    order they are made and run id -> the rung epoch that stopped it."""
    halving = Halving(spec, entrants)
    cuts: list[Cut] = []
    stopped: dict[int, int] = {}
    queue = collections.deque(sorted(halving.alive))
    while queue:
        run_id = queue.popleft()
        step = halving.reached(run_id, histories.get(run_id, ()))
        cuts += step.cuts
        queue.extend(step.resume)
        stopped.update({run: cut.rung for cut in step.cuts if not cut.kept for run in cut.runs})
    return cuts, stopped


def _survival(reader: Reader, metric: str, cuts: Sequence[Cut]) -> tuple[tuple[Survival, ...], str]:
    """The verdict's best and tied models (per dataset; the best mean where none has a verdict)
    with where halving would have stopped them; or none and why there is no verdict."""
    try:
        table = verdict(reader, metric=metric).table
    except UsageError as exc:
        return (), str(exc)
    stops = {(c.dataset, c.model): c.rung for c in cuts if not c.kept}
    out = []
    for dataset, rows in table.groupby("dataset", sort=True):
        chosen = rows[rows["verdict"].isin(_KEPT_VERDICTS)]
        if chosen.empty:
            chosen = rows[rows["rank"] == rows["rank"].min()]
        for model, word in zip(chosen["model"].tolist(), chosen["verdict"].tolist(), strict=True):
            out.append(Survival(str(dataset), str(model), str(word), stops.get((str(dataset), str(model)))))
    return tuple(out), ""


def replay(
    store: str | os.PathLike[str] | Reader,
    reduction_factor: int = 3,
    min_epochs: int = 1,
    metric: str = "test_loss",
    format: str = "table",
    output: str | os.PathLike[str] | None = None,
) -> Replay:
    """What successive halving would have stopped on a finished full-grid ``store``.

    Halving with ``reduction_factor`` and ``min_epochs`` judges each pipeline on the mean
    ``metric`` (a history column: lower is better for a loss, higher for an accuracy) of its
    replicates at each rung epoch, exactly as a ``[SEARCH] strategy = halving`` sweep would
    have. Returns the decisions, the epochs it would have trained against the grid's, and
    whether the verdict's best models would have survived. With ``output`` the replay is
    also written there in ``format`` (``table``, ``json`` or ``csv``: the decisions).
    """
    _check(format, reduction_factor, min_epochs, metric)
    spec = SearchSpec(HALVING, metric, reduction_factor, min_epochs)
    target = Path(output) if output is not None else None
    reader = open_reader(store)
    try:
        if target is not None:
            check_target(target, reader.path if not reader.is_legacy else None)
        grid = _grid(reader, metric)
        totals = [e.total for e in grid.entrants]
        if not any(spec.rungs(total) for total in totals):
            raise UsageError(f"--min-epochs {min_epochs}: not below the runs' {max(totals)} epochs, so halving "
                             f"would stop nothing; use at most {max(totals) - 1} (e.g. --min-epochs 1)")
        cuts, stopped = replay_cuts(spec, grid.entrants, grid.histories)
        cuts.sort(key=lambda c: (c.dataset, c.rung, c.rank))  # as the decisions view lists them
        survival, no_verdict = _survival(reader, metric, cuts)
        path = Path(reader.path)
    finally:
        if reader is not store:
            reader.close()
    grid_epochs = {e.run_id: len(grid.histories.get(e.run_id, ())) for e in grid.entrants}
    halving_epochs = {run: min(count, stopped.get(run, count)) for run, count in grid_epochs.items()}
    rows = [{"sweep_id": None, **cut.row()} for cut in cuts]
    result = Replay(path, spec, len(grid.entrants), tuple(totals), tuple(cuts), stopped,
                    effort(rows, grid_epochs, halving_epochs), survival, no_verdict)
    if target is not None:
        write_output(target, result.render(format))
    return result

