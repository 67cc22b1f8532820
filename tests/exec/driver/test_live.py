"""Live history (mosaic.exec.driver.live): epochs reach the store while runs train, each once
(the history view's latest-wins rule is tested with the session, tests/store/test_session.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from mosaic.analysis.report import plotloss
from mosaic.cli import main
from mosaic.exec.driver.commands import run
from mosaic.exec.driver.live import LiveHistory
from mosaic.exec.driver.status import status, watch_status
from mosaic.exec.wire.events import RunEvent, read_events
from mosaic.store.session import open_store


def _epoch(run_id: int, attempt: int, epoch: int, epochs: int = 5) -> RunEvent:
    message = {"event": "epoch", "run_id": run_id, "attempt": attempt, "epoch": epoch, "epochs": epochs, "train_loss": 1.0 / epoch,
               "test_loss": 2.0 / epoch, "train_acc": None, "test_acc": None, "seconds": 0.1}
    (event,) = read_events(message)  # as the driver receives it
    return event


def test_no_epoch_is_written_twice_by_one_attempt() -> None:
    rows: list[dict[str, Any]] = []
    live = LiveHistory(rows.append, {1: 0, 2: 1})
    for event in (_epoch(1, 0, 1), _epoch(1, 0, 2), _epoch(1, 0, 2), _epoch(2, 0, 4), _epoch(3, 0, 1), _epoch(2, 1, 4)):
        live.events.append(event)
    assert live.drain() == 3  # a repeat, another attempt of run 2, a run not of this sweep: dropped
    assert [(r["run_id"], r["attempt"], r["epoch"]) for r in rows] == [(1, 0, 1), (1, 0, 2), (2, 1, 4)]
    assert live.progress == {1: (2, 5), 2: (4, 5)}
    # the attempt ends: only the epochs that did not come live are written (run 2: 1-3 from its checkpoint)
    history = [{"epoch": e, "train_loss": 1.0, "test_loss": 1.0} for e in (1, 2, 3)]
    assert [r["epoch"] for r in live.unwritten(1, 0, history)] == [3]
    assert [r["epoch"] for r in live.unwritten(2, 1, [*history, {"epoch": 4}])] == [1, 2, 3]
    live.events.append(_epoch(1, 0, 3))  # a late event of an epoch the end already wrote
    assert live.drain() == 0 and live.progress == {}


def test_history_is_stored_before_the_first_run_ends(sweep_dir: Path, tmp_path: Path) -> None:
    """A local sweep of 40-epoch runs: history rows and status's epoch k/40 while no run is done.

    Each run waits before its third epoch until the test has seen the history so far (the
    gated dataset of tests/data/classes_driver/gated.py): no run can be done by then, however
    fast the machine."""
    gate = tmp_path / "gate"
    gate.mkdir()  # no pass in it: every run waits at the gate until 'open' is there
    config = sweep_dir / "tiny.ini"
    text = config.read_text().replace("epochs = 1", "epochs = 40").replace(
        "class = dataset_OR\npath_to_class = ./dataset.py", f"class = dataset_gated\npath_to_class = ./gated.py\ngate = {gate}")
    assert "dataset_gated" in text
    config.write_text(text.replace("width = {2-3}", "width = 2"))  # 2 runs
    store = tmp_path / "store"
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(summary=run(config, store)), daemon=True)
    thread.start()
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + 240
    try:
        while thread.is_alive() and time.monotonic() < deadline and "progress" not in seen:
            if (store / "_mosaic.json").exists() and any(store.glob("history/*/*.parquet")):
                with open_store(store) as session:
                    counts = session.sql("SELECT (SELECT count(*) FROM history), "
                                         "(SELECT count(*) FROM runs WHERE status = 'done')").fetchall()[0]
                seen.setdefault("counts", counts)
                report = status(store)
                # the history rows and the heartbeat's planned epochs are written apart: wait for both
                if report.progress and all(p.epochs is not None for p in report.progress.values()):
                    seen["progress"], seen["text"] = report.progress, report.render()
                    seen["plot"] = plotloss(store, tmp_path / "so-far.pdf", plot_size=1)  # the epochs so far
            time.sleep(0.2)
    finally:
        (gate / "open").touch()  # the runs train on to their 40 epochs
    thread.join(timeout=240)
    assert not thread.is_alive()
    assert outcome["summary"].exit_code == 0
    history, done = seen["counts"]
    assert history > 0 and done == 0
    progress = next(iter(seen["progress"].values()))
    assert progress.epochs == 40 and 1 <= progress.epoch < 40 and progress.train_loss is not None
    assert f"epoch {progress.epoch}/40" in seen["text"]
    assert seen["plot"].runs >= 1 and seen["plot"].pages == seen["plot"].runs
    assert len(PdfReader(tmp_path / "so-far.pdf").pages) == seen["plot"].pages
    # every epoch once: the rows that came live are not written again at the end
    with open_store(store) as session:
        per_run = session.sql("SELECT run_id, count(*), count(DISTINCT epoch) FROM history_all GROUP BY run_id").fetchall()
    assert sorted(per_run) == [(1, 40, 40), (2, 40, 40)]
    # no live driver is left: watching ends by itself after one report
    assert len(list(watch_status(store, interval=0.05))) == 1
    assert main(["status", str(store), "--watch", "--interval", "0.05"]) == 0
