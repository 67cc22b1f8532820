"""Mosaic's page beside Dask's dashboard (mosaic.exec.cluster.page): the latest epoch and state of
each run, the lazily built dashboard, and both fetched while a local sweep runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mosaic.exec.cluster.page import MosaicPage
from mosaic.exec.driver.commands import run
from mosaic.exec.wire.events import Event, run_key, sweep_topic
from tests.helpers.servers import fetch


def test_local_sweep_prints_a_dashboard_that_answers_while_it_runs(sweep_dir: Path, tmp_path: Path) -> None:
    config = sweep_dir / "tiny.ini"
    config.write_text(config.read_text().replace("epochs = 1", "epochs = 3"))
    seen: dict[str, Any] = {}

    def on_event(event: Event) -> None:
        # the driver waits for this callback: the sweep is still going while we fetch
        if event.kind == "cluster":
            seen["link"], seen["page"] = event.link, event.page
        elif event.kind == "running" and "status" not in seen:
            seen["status"] = fetch(seen["link"])[0]
        elif event.kind == "finished" and "first" not in seen:
            seen["first"] = event.run_id
            seen["json"] = json.loads(fetch(seen["page"] + ".json")[1])
            seen["html"] = fetch(seen["page"])[1].decode()

    summary = run(config, tmp_path / "store", on_event=on_event)
    assert summary.exit_code == 0
    assert seen["link"].startswith("http://127.0.0.1:") and seen["link"].endswith("/status")
    assert seen["page"] == seen["link"].replace("/status", "/mosaic")
    assert seen["status"] == 200
    # the run that just finished reported its 3 epochs to the page, with its losses
    (first,) = [r for r in seen["json"]["runs"] if r["run"] == seen["first"] and r["sweep"] == summary.sweep_id]
    assert (first["epoch"], first["epochs"], first["state"]) == (3, 3, "finished")
    assert first["train_loss"] > 0 and first["test_loss"] > 0
    assert "<table>" in seen["html"] and "Mosaic runs" in seen["html"]


def test_page_keeps_the_latest_epoch_and_state_of_each_run() -> None:
    page = MosaicPage()
    key = run_key(4, 17, "ab12cd34")
    assert key == "run-4-17-ab12cd34" and run_key(4, 17, "ab12cd34", 2) == "run-4-17-ab12cd34-2"
    page.transition(key, "released", "waiting")
    page.transition(key, "waiting", "processing")
    topic = sweep_topic(4, "ab12cd34")
    page.log_event(topic, [{"event": "epoch", "run_id": 17, "attempt": 0, "epoch": e, "epochs": 5, "train_loss": 1.0 / e} for e in (1, 2)])
    page.log_event(topic + "-other", [{"event": "epoch", "run_id": 17, "epoch": 4}])  # another topic: ignored
    page.transition("run-4-18-ab12cd34-1", "processing", "erred")
    page.transition("other-task", "processing", "memory")
    # runs in a batch: their start and end come on the sweep's topic
    batch = {"key": "runs-4-19x2-ab12cd34-1", "worker": "h:1", "device": "cpu"}
    page.transition(batch["key"], "waiting", "processing")  # a batch's key names no single run
    page.log_event(topic, [{"event": "start", "run_id": 19, **batch}])
    page.log_event(topic, [{"event": "end", "run_id": 19, "status": "error", **batch}, {"event": "start", "run_id": 20, **batch}])
    rows = {r["run"]: r for r in page.rows()}
    assert set(rows) == {17, 18, 19, 20}
    assert (rows[19]["state"], rows[20]["state"]) == ("failed", "running")
    page.log_event(topic, [{"event": "end", "run_id": 20, "status": "done", **batch}])
    assert {r["run"]: r for r in page.rows()}[20]["state"] == "finished"
    assert (rows[17]["state"], rows[17]["epoch"], rows[17]["epochs"], rows[17]["train_loss"]) == ("training", 2, 5, 0.5)
    assert rows[18]["state"] == "failed"
    page.transition(key, "processing", "memory")
    page.transition(key, "memory", "released")  # the driver released the result: still finished
    assert {r["run"]: r for r in page.rows()}[17]["state"] == "finished"


def test_the_embedded_dashboard_is_built_on_its_first_visit(dask_client: Any) -> None:
    """The embedded scheduler starts without Dask's bokeh pages (~1.3 s of CPU before the first
    run); the first visit builds them and is redirected to the page asked for."""
    from mosaic.exec.cluster.page import LazyDashboard

    def applications(dask_scheduler: Any) -> list[str]:
        return [type(app).__name__ for app in dask_scheduler.http_application.applications]

    assert dask_client.run_on_scheduler(applications) == []
    dask_client.register_plugin(LazyDashboard(), name=LazyDashboard.name)
    assert dask_client.run_on_scheduler(applications) == ["Application"]  # the stand-in
    base = dask_client.dashboard_link.rsplit("/", 1)[0]
    status, body = fetch(base + "/workers")
    assert status == 200 and b"bokeh" in body.lower()
    assert dask_client.run_on_scheduler(applications) == ["DaskBokehTornado"]
    assert fetch(base + "/status")[0] == 200
    assert fetch(base + "/no-such-page")[0] == 404
