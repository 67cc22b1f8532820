"""The sweep commands: ``run`` (a config), ``resume`` (a store, or what a pause left) and
``rerun`` (more epochs from the checkpoints) plan their runs here and hand them to
:class:`mosaic.exec.driver.sweep.Sweep`, which trains them on the cluster and records them.

Every check that can refuse a sweep is made here, once, before anything is written
(:func:`_precheck`: the embedded cluster's worker plan, CUDA, the worker start method).
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mosaic import schemas
from mosaic import sweep as sweeps
from mosaic.config import Config, load_config
from mosaic.errors import SelectionError, UsageError
from mosaic.exec.cluster.connect import local_plan
from mosaic.exec.cluster.workers import WorkerPlan
from mosaic.exec.driver.resume import open_target, plan_pause_file, plan_resume, recorded_config
from mosaic.exec.driver.status import latest_runs
from mosaic.exec.driver.summary import SweepSummary
from mosaic.exec.driver.sweep import OnEvent, Sweep
from mosaic.exec.wire.events import Event
from mosaic.rerun_config import RerunConfig, load_rerun_config, rerun_process
from mosaic.store.reader import open_reader, select_runs
from mosaic.store.records import PlannedRun
from mosaic.store.selection import Selection
from mosaic.store.status import RunStatus
from mosaic.store.writer import Store

__all__ = ["PlannedRun", "SweepSummary", "promote", "rerun", "resume", "run"]


def run(
    config: str | os.PathLike[str] | Config,
    store: str | os.PathLike[str],
    client: Any = None,
    *,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    on_event: OnEvent | None = None,
) -> SweepSummary:
    """Generate the pipelines of ``config`` and train them all on Dask into ``store``.

    Nothing is written when the config is invalid (ConfigError) or need_gpu finds no CUDA
    (RunError). Returns the summary; ``summary.exit_code`` is 0 when every run is done.
    """
    config = config if isinstance(config, Config) else load_config(config)
    pipelines = sweeps.generate(config)
    plan_of_workers = _precheck(config, client, scheduler, scheduler_file, workers)
    target = Store(store, create=True)

    def plan() -> list[PlannedRun]:
        ids = target.allocate_run_ids(len(pipelines))
        epochs = config.process.epochs
        return [PlannedRun(i, 0, p, epochs, total=epochs) for i, p in zip(ids, pipelines, strict=True)]

    return Sweep(target, "run", config, on_event, workers=plan_of_workers).execute(
        plan, new_params=True, client=client, scheduler=scheduler, scheduler_file=scheduler_file, workers=workers
    )


def resume(
    source: str | os.PathLike[str] | None = None,
    *,
    store: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | Config | None = None,
    client: Any = None,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    on_event: OnEvent | None = None,
) -> SweepSummary:
    """Finish what a killed, interrupted or paused sweep left.

    ``source`` is a store folder (default: ``store``, else the last store used): every run
    not done/error/system failure and owned by no live driver trains up to its planned
    epochs, from its last checkpoint, keeping its run id (UsageError while live drivers own
    them all). Or ``source`` is a pipeline file written by ``mosaic pause`` (or any legacy
    file): its pipelines run, the paused ones keeping their run ids.
    """
    if source is None or Path(source).is_dir():
        return _resume_store(source if source is not None else store, config, on_event=on_event, client=client,
                             scheduler=scheduler, scheduler_file=scheduler_file, workers=workers)
    paused = plan_pause_file(source, store, config)
    plan_of_workers = _precheck(paused.config, client, scheduler, scheduler_file, workers)
    return Sweep(paused.store, "resume", paused.config, on_event, workers=plan_of_workers).execute(
        paused.plan, new_params=paused.new_runs, client=client, scheduler=scheduler, scheduler_file=scheduler_file,
        workers=workers,
    )


def _resume_store(store: str | os.PathLike[str] | None, config: str | os.PathLike[str] | Config | None, *,
                  on_event: OnEvent | None, client: Any, **where: Any) -> SweepSummary:
    target = open_target(store)
    first = plan_resume(target, config)  # refuses before anything starts
    if first.config is None:  # nothing left to run: finish compactions a killed driver left
        target.compact()
        return SweepSummary(target.path, 0, "resume", (), (), 0.0, target.default_run_files)
    plan_of_workers = _precheck(first.config, client, where.get("scheduler"), where.get("scheduler_file"), where.get("workers"))
    sweep = Sweep(target, "resume", first.config, on_event, workers=plan_of_workers)

    def plan() -> list[PlannedRun]:
        # again, under the claim lock and with this driver's heartbeat up: two resumes never take one run
        again = plan_resume(target, first.config, ignore=[sweep.sweep_id])
        if not again.runs:
            raise UsageError(f"{target.path}: another 'mosaic resume' took the runs left; nothing to resume")
        return again.runs

    for sweep_id, ids in first.owned.items():
        sweep.emit(Event("warning", text=f"{len(ids)} runs of sweep {sweep_id} are left to its live driver"))
    return sweep.execute(plan, new_params=False, client=client, claim=target.claim_lock, **where)


def rerun(
    config: str | os.PathLike[str] | Config | RerunConfig,
    store: str | os.PathLike[str],
    selection: Any,
    epochs: int | None = None,
    *,
    client: Any = None,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    on_event: OnEvent | None = None,
) -> SweepSummary:
    """Continue training the selected runs from their checkpoints for ``epochs`` more epochs.

    As the original's ``mosaic_rerun``: each run continues with its own recorded PROCESS
    values (lr, loss, optimizer, ...); the config gives the MONITOR settings (it needs only
    ``[MONITOR]``; its ``[PROCESS]`` is ignored) and, in a ``[RERUN]`` section, PROCESS keys
    that override the recorded values for every selected run (written to the store as the
    runs' new values). ``epochs`` defaults to ``[RERUN] epochs``, else, for a run a search
    stopped, the epochs left to its planned total, else each run's recorded epochs. Each run
    gets attempt + 1 in a new sweep.
    """
    if isinstance(config, Config):
        config = RerunConfig.of(config)
    elif not isinstance(config, RerunConfig):
        config = load_rerun_config(config)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise UsageError(f"-epoch must be a positive integer; got {epochs!r}")
    target = Store(store)
    ids, latest = _selected(target, selection)
    unknown = [i for i in ids if not latest[i]["pipeline_json"]]
    if unknown:
        raise SelectionError(f"{target.path}: runs {', '.join(map(str, unknown[:10]))} have no recorded pipeline; they cannot be rerun")
    recorded = _recorded_process(target, ids)
    processes = {i: rerun_process(config, recorded.get(i, {}), f"{target.path} run {i}") for i in ids}
    first = Config(config.path, config.text, processes[ids[0]], config.monitor, (), ())  # MONITOR, run_files
    plan_of_workers = _precheck(first, client, scheduler, scheduler_file, workers)
    with open_reader(target) as reader:  # the planned total: the epochs a run's results hold, plus more
        trained = {r["run_id"]: r["epochs"] for r in reader.results(ids).to_pylist()}

    def more_of(i: int) -> int:
        planned = latest[i].get("planned_epochs")
        if epochs or "epochs" in config.overrides or latest[i]["status"] != RunStatus.STOPPED or not planned:
            return epochs or processes[i].epochs
        return max(1, int(planned) - int(trained.get(i) or 0))  # a stopped run: to its planned total

    more = {i: more_of(i) for i in ids}

    def plan() -> list[PlannedRun]:
        return [
            PlannedRun(i, int(latest[i]["attempt"] or 0) + 1, json.loads(latest[i]["pipeline_json"]), more[i], True,
                       trained[i] + more[i] if trained.get(i) is not None else None)
            for i in ids
        ]

    overrides = [(i, key, value) for i in ids for key, value in config.overrides.items()
                 if recorded.get(i, {}).get(key) != value]
    sweep = Sweep(target, "rerun", first, on_event, workers=plan_of_workers, processes=processes, overrides=overrides)
    return sweep.execute(
        plan, new_params=False, client=client, scheduler=scheduler, scheduler_file=scheduler_file, workers=workers
    )


def promote(
    store: str | os.PathLike[str],
    selection: Any,
    *,
    config: str | os.PathLike[str] | Config | None = None,
    client: Any = None,
    scheduler: str | None = None,
    scheduler_file: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    on_event: OnEvent | None = None,
) -> SweepSummary:
    """Train runs a search stopped (status ``stopped``) on to their planned epochs, from their
    checkpoints: exactly what the run would have trained had it not been cut.

    ``config`` (its MONITOR settings) defaults to the config their sweep recorded. Refuses
    (SelectionError) runs that are not stopped: ``rerun`` continues any run by a number of epochs.
    """
    target = Store(store)
    ids, latest = _selected(target, selection)
    refused = [f"{i} ({latest[i]['status']})" for i in ids if latest[i]["status"] != RunStatus.STOPPED]
    if refused:
        raise SelectionError(f"{target.path}: only stopped runs can be promoted; not stopped: {', '.join(refused[:10])}. "
                             "Continue other runs with 'mosaic rerun CONFIG STORE -id ... -epoch N'")
    if config is None:
        config = recorded_config(target, {int(latest[i]["sweep_id"]) for i in ids})
    return rerun(config, target.path, Selection(ids=",".join(map(str, ids))), client=client, scheduler=scheduler, scheduler_file=scheduler_file,
                 workers=workers, on_event=on_event)


def _selected(target: Store, selection: Any) -> tuple[list[int], dict[int, dict[str, Any]]]:
    """The run ids ``selection`` picks in ``target`` and their latest runs rows; SelectionError
    when it picks none, or a run the store has no runs row for."""
    ids = sorted(set(select_runs(target.path, selection)))
    if not ids:
        raise SelectionError(f"{target.path}: the selection matches no run; check it with 'mosaic status {target.path}'")
    latest = {row["run_id"]: row for row in latest_runs(target, ids)}
    missing = [i for i in ids if i not in latest]
    if missing:
        raise SelectionError(f"{target.path}: no run {', '.join(map(str, missing[:10]))} in this store")
    return ids, latest


def _recorded_process(store: Store, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """The PROCESS values recorded for each run (its params of PROCESS key names), as text."""
    names = list(schemas.config_keys("PROCESS"))
    with open_reader(store, live=False) as reader:
        table = reader.params(ids=ids, names=names)
    values: dict[int, dict[str, str]] = collections.defaultdict(dict)
    for run_id, name, value in zip(*(table.column(c).to_pylist() for c in ("run_id", "param_name", "param_value")),
                                   strict=True):
        if value is not None:
            values[run_id][name] = value
    return values


def _precheck(config: Config, client: Any, scheduler: Any, scheduler_file: Any, workers: int | None) -> WorkerPlan | None:
    """Refuse before anything is written: no CUDA for need_gpu, a bad --workers or MOSAIC_WORKER_START.
    The embedded cluster's plan (None when the sweep runs on an existing cluster)."""
    if client is None and scheduler is None and scheduler_file is None:
        return local_plan(config.monitor, workers)
    return None
