"""A rerun's config (mosaic.rerun_config): rerun continues each run with its recorded PROCESS
values, as the original did.

The rerun config needs only [MONITOR]; its [PROCESS] is ignored; a [RERUN] section
overrides PROCESS keys explicitly. What a run trained with is read back from its own
checkpoint (the optimizer's lr) and from the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from mosaic.analysis.sql import query
from mosaic.errors import ConfigError
from mosaic.exec.driver.commands import rerun, run
from mosaic.exec.training import tensor_pack
from mosaic.rerun_config import load_rerun_config, rerun_process
from mosaic.store.layout import checkpoint_path
from mosaic.store.selection import Selection

MONITOR = """[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = 2
multiplicity = 1
cache_database_path = cache
cache_size = 10M
"""
RECORDED = {"lr": "1e-2", "epochs": "1", "loss_function": "MSELoss", "data_scheme": "dataset",
            "pipeline_scheme": "mlp", "run_files_path": "run_files", "seed": "7"}


def checkpoint_lr(sweep_dir: Path, run_id: int) -> float:
    payload = torch.load(checkpoint_path(sweep_dir / "run_files", run_id), map_location="cpu", weights_only=True)
    return tensor_pack.unpack(payload["optimizer"])["param_groups"][0]["lr"]


def results(store: Path) -> dict[int, tuple[int, int]]:
    rows = query(store, "SELECT run_id, epochs, attempt FROM run_results ORDER BY run_id", format="csv").split()[1:]
    return {int(r): (int(e), int(a)) for r, e, a in (row.split(",") for row in rows)}


def recorded_lr(store: Path) -> dict[int, str]:
    rows = query(store, "SELECT run_id, param_value FROM params WHERE param_name = 'lr' ORDER BY 1", format="csv")
    return {int(r): v for r, v in (row.split(",") for row in rows.split()[1:])}


def test_rerun_keeps_recorded_process_unless_rerun_overrides(sweep_dir: Path, tmp_path: Path, dask_client: Any) -> None:
    store = tmp_path / "store"
    assert run(sweep_dir / "tiny.ini", store, dask_client).exit_code == 0  # lr = 1e-2, epochs = 1
    assert checkpoint_lr(sweep_dir, 1) == pytest.approx(1e-2)

    # a later sweep's config, with another lr and epochs: its [PROCESS] does not touch run 1
    later = sweep_dir / "later.ini"
    later.write_text((sweep_dir / "tiny.ini").read_text().replace("lr = 1e-2", "lr = 0.5").replace("epochs = 1", "epochs = 5"))
    assert rerun(later, store, Selection(ids="1"), client=dask_client).exit_code == 0
    assert results(store)[1] == (2, 1)  # its recorded epochs (1) more, not the config's 5
    assert checkpoint_lr(sweep_dir, 1) == pytest.approx(1e-2)

    # a MONITOR-only config: continues with everything recorded; -epoch given
    monitor_only = sweep_dir / "monitor.ini"
    monitor_only.write_text(MONITOR)
    assert rerun(monitor_only, store, Selection(ids="3"), epochs=2, client=dask_client).exit_code == 0
    assert results(store)[3] == (3, 1)
    assert checkpoint_lr(sweep_dir, 3) == pytest.approx(1e-2)

    # an explicit override: [RERUN] lr; the store records it as run 2's lr from now on
    override = sweep_dir / "override.ini"
    override.write_text(MONITOR + "\n[RERUN]\nlr = 0.5\n")
    assert rerun(override, store, Selection(ids="2"), epochs=1, client=dask_client).exit_code == 0
    assert checkpoint_lr(sweep_dir, 2) == pytest.approx(0.5)
    assert recorded_lr(store) == {1: "1e-2", 2: "0.5", 3: "1e-2", 4: "1e-2"}
    assert results(store) == {1: (2, 1), 2: (2, 1), 3: (3, 1), 4: (1, 0)}


def test_rerun_config_errors_name_the_fix(tmp_path: Path) -> None:
    process_only = tmp_path / "process.ini"
    process_only.write_text("[PROCESS]\nlr = 1e-2\n")
    with pytest.raises(ConfigError, match=r"process.ini: no \[MONITOR\] section; rerun needs one"):
        load_rerun_config(process_only)
    for body, message in [
        ("[RERUN]\nlrr = 1\n", r"\[RERUN\] lrr: not a PROCESS key, so nothing to override; did you mean lr"),
        ("[RERUN]\noptimizer = SGD\n", r"\[RERUN\] optimizer: cannot be overridden: a rerun continues the run's own optimizer"),
    ]:
        bad = tmp_path / "bad.ini"
        bad.write_text(MONITOR + body)
        with pytest.raises(ConfigError, match=message):
            load_rerun_config(bad)
    (tmp_path / "plain.ini").write_text(MONITOR)
    bad_monitor = tmp_path / "monitor.ini"
    bad_monitor.write_text(MONITOR.replace("nb_processus = 2", "nb_processus = two"))
    with pytest.raises(ConfigError, match=r"\[MONITOR\] nb_processus: 'two' is not"):
        load_rerun_config(bad_monitor)
    overriding = tmp_path / "lr.ini"
    overriding.write_text(MONITOR + "[RERUN]\nlr = fast\n")
    with pytest.raises(ConfigError, match=r"run 4: its recorded PROCESS values with the \[RERUN\] overrides .* lr: 'fast'"):
        rerun_process(load_rerun_config(overriding), RECORDED, "run 4")
    with pytest.raises(ConfigError, match=r"run 5: no recorded lr in the store; set 'lr = ...' in the \[RERUN\] section of"):
        rerun_process(load_rerun_config(tmp_path / "plain.ini"), {k: v for k, v in RECORDED.items() if k != "lr"}, "run 5")
    with pytest.raises(ConfigError, match=r"run 6: no recorded data_scheme in the store, so it cannot be continued"):
        rerun_process(load_rerun_config(tmp_path / "plain.ini"),
                      {k: v for k, v in RECORDED.items() if k != "data_scheme"}, "run 6")


def test_recorded_values_and_overrides_merge(tmp_path: Path) -> None:
    (tmp_path / "monitor.ini").write_text(MONITOR)
    assert rerun_process(load_rerun_config(tmp_path / "monitor.ini"), RECORDED, "run 1").lr == pytest.approx(1e-2)
    (tmp_path / "override.ini").write_text(MONITOR + "[RERUN]\nlr = 0.5\nepochs = 4\n")
    process = rerun_process(load_rerun_config(tmp_path / "override.ini"), RECORDED, "run 1")
    assert (process.lr, process.epochs, process.loss_function) == (0.5, 4, "MSELoss")


