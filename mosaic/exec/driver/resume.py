"""Planning ``mosaic resume STORE``: which runs of a store are left to finish, and how.

A run is left to finish when its latest status is ``pending``, ``running``, ``paused`` or
``interrupted`` and no live driver owns it (its sweep has no fresh heartbeat of a living
process, see :func:`mosaic.exec.driver.heartbeat.live_sweeps`). Each one keeps its run id, gets
attempt + 1 (so the ``history`` view shows the new attempt's epochs only, whatever an
earlier attempt left) and trains up to its planned total of epochs (``runs.planned_epochs``)
from its last checkpoint when there is one: a run checkpointed at epoch 10 of 15 trains 5.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from mosaic import sweep as sweeps
from mosaic.config import Config, load_config
from mosaic.errors import ConfigError, UsageError
from mosaic.exec.driver import heartbeat
from mosaic.exec.driver.pause import read_sidecar
from mosaic.store.reader import open_reader
from mosaic.store.records import PlannedRun
from mosaic.store.status import RESUMABLE
from mosaic.store.writer import Store, store_at


@dataclass(frozen=True)
class ResumePlan:
    """What a ``resume`` of a store will run."""

    store: Store
    config: Config | None  # None when there is nothing to run
    runs: list[PlannedRun]
    owned: dict[int, list[int]]  # runs left alone: live sweep id -> its unfinished run ids


@dataclass(frozen=True)
class PausedPlan:
    """What a ``resume`` of a pipeline file will run."""

    store: Store
    config: Config
    plan: Callable[[], list[PlannedRun]]
    new_runs: bool  # the file's runs get new ids (and params): not the pause's own file and store


def plan_pause_file(pipeline_file: str | os.PathLike[str], store: str | os.PathLike[str] | None,
                    config: str | os.PathLike[str] | Config | None) -> PausedPlan:
    """The runs of a pipeline file; store and config default to those ``pause`` recorded beside it."""
    pipelines = sweeps.read_pipelines(pipeline_file)
    side = read_sidecar(pipeline_file)
    store = store or side.get("store")
    if store is None:
        raise UsageError(f"{pipeline_file}: not written by 'mosaic pause'; give the store with --store")
    config_path = config or side.get("config_path")
    if config_path is None:
        raise UsageError(f"{pipeline_file}: not written by 'mosaic pause'; give the config with --config")
    if not isinstance(config_path, Config) and not Path(config_path).is_file():
        raise ConfigError(f"{config_path}: the paused sweep's config is gone; give one with --config")
    chosen = config_path if isinstance(config_path, Config) else load_config(config_path)
    target = Store(store, create=True)
    recorded = side.get("runs") or []
    reuse = len(recorded) == len(pipelines) and Path(side.get("store", "")).resolve() == target.path.resolve()

    def plan() -> list[PlannedRun]:
        if reuse:
            return [
                PlannedRun(int(r["run_id"]), int(r["attempt"]), p, int(r["epochs"]), bool(r["resume"]), r.get("total"))
                for r, p in zip(recorded, pipelines, strict=True)
            ]
        ids = target.allocate_run_ids(len(pipelines))
        epochs = chosen.process.epochs
        return [PlannedRun(i, 0, p, epochs, total=epochs) for i, p in zip(ids, pipelines, strict=True)]

    return PausedPlan(target, chosen, plan, not reuse)


def open_target(store: str | os.PathLike[str] | None) -> Store:
    """The store to resume (default: the last one used)."""
    return store_at(store, "mosaic resume STORE")


def plan_resume(target: Store, config: str | os.PathLike[str] | Config | None = None,
                ignore: Iterable[int] = ()) -> ResumePlan:
    """The runs of ``target`` left to finish, with the config to run them with.

    ``ignore``: sweep ids whose heartbeat does not count (the resuming driver's own).
    Raises UsageError when live drivers own every unfinished run, ConfigError when the
    sweeps' config is gone or several differ and none is given.
    """
    live = set(heartbeat.live_sweeps(target)) - set(ignore)
    with open_reader(target) as reader:
        rows = [r for r in reader.runs().to_pylist() if r["status"] in RESUMABLE and r["pipeline_json"]]
        sweeps = {int(s["sweep_id"]): s for s in reader.sweeps().to_pylist()}
    owned: dict[int, list[int]] = {}
    left = []
    for row in rows:
        if row["sweep_id"] in live:
            owned.setdefault(int(row["sweep_id"]), []).append(int(row["run_id"]))
        else:
            left.append(row)
    if owned and not left:
        raise UsageError(f"{target.path}: {_owners(target, owned)}; wait for it to end (or pause it) before resuming")
    if not left:
        return ResumePlan(target, None, [], owned)
    chosen = _config(target, config, [sweeps.get(int(r["sweep_id"])) for r in left])
    runs = []
    for row in left:
        total = row.get("planned_epochs") or chosen.process.epochs
        runs.append(PlannedRun(int(row["run_id"]), int(row["attempt"] or 0) + 1, _pipeline(row), int(total), True, int(total)))
    return ResumePlan(target, chosen, sorted(runs, key=lambda r: r.run_id), owned)


def _pipeline(row: dict[str, Any]) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], json.loads(row["pipeline_json"]))


def _owners(target: Store, owned: dict[int, list[int]]) -> str:
    parts = []
    for sweep_id, ids in sorted(owned.items()):
        shown = ", ".join(map(str, sorted(ids)[:10])) + (" ..." if len(ids) > 10 else "")
        parts.append(f"sweep {sweep_id} (driver {heartbeat.driver_of(target, sweep_id)}) still owns runs {shown}")
    return "; ".join(parts)


def recorded_config(target: Store, sweep_ids: Iterable[int]) -> Config:
    """The config the sweeps ``sweep_ids`` of ``target`` recorded (ConfigError when gone or several)."""
    with open_reader(target) as reader:
        sweeps = {int(s["sweep_id"]): s for s in reader.sweeps().to_pylist()}
    return _config(target, None, [sweeps.get(i) for i in sweep_ids])


def _config(target: Store, given: str | os.PathLike[str] | Config | None, sweeps: list[dict[str, Any] | None]) -> Config:
    if isinstance(given, Config):
        return given
    if given is not None:
        return load_config(given)
    recorded = {(str(s["config_path"]), s["config"]) for s in sweeps if s and s.get("config_path")}
    if not recorded:
        raise ConfigError(f"{target.path}: no config recorded for the runs to resume; give one with --config")
    if len({path for path, _ in recorded}) > 1:
        paths = ", ".join(sorted({path for path, _ in recorded}))
        raise ConfigError(f"{target.path}: the runs to resume come from sweeps of different configs ({paths}); "
                          "resume them with --config CONFIG")
    path = Path(next(iter(recorded))[0])
    if not path.is_file():
        raise ConfigError(f"{path}: the config of the sweep to resume is gone; give one with --config")
    return load_config(path)
