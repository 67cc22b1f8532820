"""Mosaic's page beside Dask's dashboard (mosaic.exec.cluster.page): the scheduler plugin that
fills one live board per sweep from the sweep's plan, its runs' events and their tasks; the
page fetched while a local sweep runs; 100,000 runs' events; the lazily built dashboard."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

from mosaic.exec.cluster.connect import Cluster
from mosaic.exec.cluster.page import MosaicPage, driver_records, end_sweep, show_plan
from mosaic.exec.cluster.plugins import MosaicPlugin
from mosaic.exec.driver.commands import run
from mosaic.exec.wire.events import Event, RunEvent, run_key, sweep_topic
from mosaic.live import api, views
from mosaic.live.board import Plan
from mosaic.store.status import RunStatus
from tests.helpers.live import planned
from tests.helpers.servers import fetch

TOKEN = "ab12cd34"


def _epoch(run_id: int, epoch: int, epochs: int) -> dict[str, Any]:
    loss = 1.0 / epoch + run_id % 13 / 100
    return {"event": "epoch", "run_id": run_id, "attempt": 0, "epoch": epoch, "epochs": epochs, "train_loss": loss,
            "test_loss": loss + 0.05, "train_acc": None, "test_acc": None, "seconds": 0.01}


def test_local_sweep_shows_its_live_view_while_it_runs(sweep_dir: Path, tmp_path: Path) -> None:
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
            seen["summary"] = json.loads(fetch(seen["page"] + "/summary.json")[1])
            seen["html"] = fetch(seen["page"])[1].decode()

    summary = run(config, tmp_path / "store", on_event=on_event)
    assert summary.exit_code == 0
    assert seen["link"].startswith("http://127.0.0.1:") and seen["link"].endswith("/status")
    assert seen["page"] == seen["link"].replace("/status", "/mosaic")
    assert seen["status"] == 200
    # the plan came first: every run is there, with its dataset and model
    rows = {r["run"]: r for r in seen["json"]["runs"]}
    assert sorted(rows) == [1, 2, 3, 4] and seen["json"]["sweep"] == summary.sweep_id
    assert {(r["dataset"], r["model"]) for r in rows.values()} == {("dataset_OR", "mlp_funnel"), ("dataset_OR", "mlp_brick")}
    first = rows[seen["first"]]  # the run that just finished told its 3 epochs
    assert (first["epoch"], first["epochs"], first["state"]) == (3, 3, "done")
    assert first["train_loss"] > 0 and first["test_loss"] > 0
    head = seen["summary"]["header"]
    assert head["runs"] == 4 and head["counts"]["done"] >= 1 and head["config"] == str(config)
    assert seen["summary"]["curves"]["rows"] and '<script src="mosaic/vega.js">' in seen["html"]


def test_the_page_follows_plans_events_and_tasks() -> None:
    page = MosaicPage()
    plan = Plan.of(4, TOKEN, planned(1, 2, 2, epochs=5), ("dataset",), ("mlp",), kind="run", config="c.ini")
    page.take_plan(plan.message())
    topic = sweep_topic(4, TOKEN)
    page.transition(run_key(4, 1, TOKEN), "waiting", "processing")  # a run alone: its task started
    page.log_event(topic, [_epoch(1, e, 5) for e in (1, 2)])
    page.log_event(topic + "-other", [_epoch(1, 4, 5)])  # another topic: ignored
    page.transition(run_key(4, 2, TOKEN, 1), "processing", "erred")  # its worker died
    page.transition("other-task", "processing", "memory")
    batch = {"key": f"runs-4-3x2-{TOKEN}-1", "worker": "h:1", "device": "cpu"}  # runs in a batch: their records say
    page.log_event(topic, [{"event": "start", "run_id": 3, **batch}, {"event": "start", "run_id": 4, **batch}])
    page.log_event(topic, [{"event": "end", "run_id": 3, "status": "error", "error": "ValueError: boom", **batch}])
    board = page.board("")
    assert board is page.board("4") is page.board(f"4-{TOKEN}") and page.board("9") is board  # the latest by default
    states = {r.run_id: r.state for r in board.runs.values()}
    assert states == {1: RunStatus.RUNNING, 2: RunStatus.SYSTEM_FAILURE, 3: RunStatus.ERROR, 4: RunStatus.RUNNING}
    assert (board.runs[1].epoch, board.runs[1].epochs, board.runs[3].error) == (2, 5, "ValueError: boom")
    page.log_event(topic, [{"event": "start", "run_id": 2, **batch}])  # the driver runs it again
    assert board.runs[2].state == RunStatus.RUNNING
    page.log_event(topic, [_epoch(4, e, 5) for e in range(1, 6)] + [{"event": "end", "run_id": 4, "status": "done", **batch}])
    page.transition(run_key(4, 4, TOKEN), "processing", "erred")  # too late: its end was told
    assert board.runs[4].state == RunStatus.DONE and board.runs[4].final is not None
    # what only the driver decides: a search stops run 4 at a rung, and says why
    decision = {"dataset": "d0", "model": "m1", "rung": 5, "runs": "3,4", "metric": "test_loss", "value": 0.5,
                "cutoff": 0.4, "kept": False, "rank": 2, "pipelines": 2, "reason": "rank 2 of 2", "time": object()}
    page.log_event(topic, driver_records([(4, RunStatus.STOPPED, "stopped at epoch 5")], [decision]))
    assert board.runs[4].state == RunStatus.STOPPED and board.runs[4].error == "stopped at epoch 5"
    shown = api.respond(page, "/mosaic/summary.json", {}).body
    decisions = json.loads(shown)["decisions"]
    assert decisions["total"] == 1 and decisions["rows"][0]["reason"] == "rank 2 of 2" and "time" not in decisions["rows"][0]
    page.end_sweep(4, TOKEN)
    assert board.count(RunStatus.INTERRUPTED) == 2 and board.finished
    assert [s["id"] for s in page.sweeps()] == [f"4-{TOKEN}"]


def test_the_plan_travels_to_the_scheduler_not_to_the_workers(dask_client: Any, sweep_dir: Path) -> None:
    from mosaic.config import load_config

    config = load_config(sweep_dir / "tiny.ini")
    plugin = MosaicPlugin(7, runs=planned(1, 2, 3, epochs=2), config=config, kind="run", run_files="s3://bucket/runs")
    assert plugin.plan is not None and plugin.plan["token"] == plugin.token and plugin.plan["run_files"] is None
    assert pickle.loads(pickle.dumps(plugin)).plan is None  # what workers get
    dask_client.register_plugin(MosaicPage(), name=MosaicPage.name)
    assert show_plan(dask_client, plugin.plan)
    dask_client.log_event(plugin.topic, [{"event": "start", "run_id": 1, "key": "k", "worker": "h:1", "device": "cpu"}])
    page = dask_client.dashboard_link.rsplit("/", 1)[0] + "/mosaic"
    deadline = time.monotonic() + 60
    while (head := json.loads(fetch(f"{page}/summary.json?sweep=7-{plugin.token}")[1])["header"])["counts"]["running"] != 1:
        assert time.monotonic() < deadline, head
        time.sleep(0.1)
    assert head["runs"] == 6 and head["config"] == str(config.path) and head["counts"]["pending"] == 5
    # the driver's side of the page: a search's stops, through the cluster's client
    Cluster(dask_client, owns_client=False, page=page).tell_page(plugin, [(2, RunStatus.STOPPED, "stopped at epoch 1")])
    while json.loads(fetch(f"{page}/summary.json?sweep=7-{plugin.token}")[1])["header"]["counts"]["stopped"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    end_sweep(dask_client, 7, plugin.token)
    head = json.loads(fetch(f"{page}/summary.json?sweep=7-{plugin.token}")[1])["header"]
    assert head["finished"] and head["counts"]["interrupted"] == 5 and head["counts"]["stopped"] == 1


def test_100000_runs_events_keep_the_page_small_and_cheap() -> None:
    runs = planned(10, 1000, 10, epochs=3)
    page = MosaicPage()
    page.take_plan(Plan.of(1, TOKEN, runs, ("dataset",), ("mlp",), kind="run", config="c.ini").message())
    topic = sweep_topic(1, TOKEN)
    for planned_run in runs:
        run_id = planned_run.run_id
        status = RunStatus.ERROR if run_id % 101 == 0 else RunStatus.DONE
        page.log_event(topic, [RunEvent.start(run_id, "k", "h:1", "cpu").message(), *(_epoch(run_id, e, 3) for e in (1, 2, 3)),
                               RunEvent.end(run_id, "k", "h:1", "cpu", status, "ValueError: boom").message()])
    board = page.board("")
    assert board is not None and len(board.runs) == 100_000 and board.count(RunStatus.ERROR) == 990
    summary = api.respond(page, "/mosaic/summary.json", {}).body
    page_of_runs = api.respond(page, "/mosaic.json", {"sort": "test_loss", "limit": str(views.MAX_PAGE)}).body
    packed = api.respond(page, "/mosaic/summary.json", {}, gzipped=True).body
    assert len(summary) < 150_000 and len(page_of_runs) < 250_000 and len(packed) < 20_000, (len(summary), len(page_of_runs))
    body = json.loads(summary)
    assert body["groups"]["total"] == 10_000 and len(body["groups"]["rows"]) == views.MAX_GROUPS
    assert body["failures"]["total"] == 990 and body["header"]["epochs_trained"] == 300_000


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
