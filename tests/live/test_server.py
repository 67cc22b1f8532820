"""``mosaic ui`` (mosaic.live.server): the live page over a store through the standard library's
HTTP server: routes, read-only, loopback by default, a store being written, 100,000 runs."""

from __future__ import annotations

import gzip
import json
import selectors
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import mosaic
from mosaic.cli import main
from mosaic.errors import StoreError, UsageError
from mosaic.live import views
from mosaic.store.layout import log_path
from mosaic.store.writer import Store
from tests.helpers.drivers import DEADLINE_S, driver
from tests.helpers.stores import SweepWriter, build_store, large_store, pipeline


def get(url: str, gzipped: bool = False) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``: status, headers, body (unzipped)."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzipped else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, dict(exc.headers), exc.read()
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return status, headers, body


def get_json(url: str) -> Any:
    status, _, body = get(url)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


def _files(root: Path) -> dict[str, int]:
    """Every file of a store and when it last changed (the readers' lock file aside: reading takes it)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".lock"}


def test_the_page_and_its_routes_over_a_finished_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", create=True)
    ids = build_store(store)
    log = log_path(store.default_run_files, ids[-1])
    log.parent.mkdir(parents=True)
    log.write_text("=== run 5\nTraceback (most recent call last):\nRuntimeError: boom\n")
    before = _files(store.path)
    with mosaic.ui(store.path, port=0) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/mosaic") and not server.warnings
        base = server.url.rsplit("/", 1)[0]
        status, headers, page = get(base + "/")  # redirected to the page
        assert status == 200 and b"mosaic/vega.js" in page and b'id="specs"' in page and b"cdn" not in page.lower()
        status, headers, script = get(server.url + "/vega.js", gzipped=True)
        assert status == 200 and headers["Content-Encoding"] == "gzip" and b"vegaEmbed" in script
        summary = get_json(server.url + "/summary.json")
        assert summary["header"]["counts"]["done"] == 4 and summary["header"]["counts"]["error"] == 1
        assert summary["header"]["store"] == str(store.path) and summary["header"]["finished"]
        assert {(r["dataset"], r["model"]) for r in summary["groups"]["rows"]} == {
            ("data_dataset_OR", "brick_2"), ("data_dataset_OR", "brick_3"), ("data_dataset_OR", "brick_4"),
            ("data_dataset_OR", "brick_10"), ("data_dataset_OR", "broken")}
        (failure,) = summary["failures"]["rows"]
        assert failure["run"] == ids[-1] and failure["error"] == "RuntimeError: boom" and failure["log"]
        assert get(base + "/" + failure["log"])[2].endswith(b"RuntimeError: boom\n")
        runs = get_json(server.url + ".json?limit=2&offset=1")
        assert runs["total"] == 5 and [r["run"] for r in runs["runs"]] == ids[1:3]
        assert {"model", "dataset"} <= set(runs["runs"][0])
        detail = get_json(f"{server.url}/run.json?run={ids[0]}")
        assert [r["epoch"] for r in detail["curve"] if r["split"] == "test"] == [1, 2, 3]
        assert get(server.url + "/run.json?run=999")[0] == 404 and get(base + "/nothing")[0] == 404
        assert get(server.url + "/log?run=1")[0] == 404  # no log file for run 1
    assert _files(store.path) == before  # read-only


def test_a_store_being_written_is_read_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", create=True)
    writer = SweepWriter(store)
    (first,) = writer.plan([pipeline("mlp_brick", 2)])
    writer.start(first)
    with mosaic.ui(store.path, port=0) as server:
        head = get_json(server.url + "/summary.json")["header"]
        assert head["counts"]["running"] == 1 and not head["finished"]
        writer.finish(first)
        (second,) = writer.plan([pipeline("mlp_brick", 3)])
        deadline = time.monotonic() + DEADLINE_S
        while (head := get_json(server.url + "/summary.json")["header"])["runs"] != 2:
            assert time.monotonic() < deadline, "the page never saw the new run"
            time.sleep(0.2)
        assert head["counts"]["done"] == 1 and head["counts"]["pending"] == 1


def test_it_listens_on_loopback_unless_told_and_says_what_exposing_means(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", create=True)
    build_store(store)
    with mosaic.ui(store.path, port=0, host="0.0.0.0") as server:
        (warning,) = server.warnings
        assert "no authentication" in warning
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(UsageError, match=f"--port {port}"):
            mosaic.ui(store.path, port=port)
    with pytest.raises(StoreError):
        mosaic.ui(tmp_path / "nothing", port=0)
    with pytest.raises(UsageError, match="--port 70000"):
        mosaic.ui(store.path, port=70000)
    assert main(["ui", str(tmp_path / "nothing"), "--port", "0"]) == 2


def _first_line(process: Any, deadline_s: float) -> str:
    with selectors.DefaultSelector() as chooser:
        chooser.register(process.stdout, selectors.EVENT_READ)
        assert chooser.select(timeout=deadline_s), "mosaic ui printed nothing"
    return str(process.stdout.readline())


def test_mosaic_ui_serves_until_ctrl_c(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", create=True)
    build_store(store)
    with socket.socket() as probe:  # a free port, named on the command line
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with driver("ui", store.path, "--port", port) as process:
        line = _first_line(process, DEADLINE_S)
        assert f"http://127.0.0.1:{port}/mosaic" in line and str(store.path) in line
        assert get_json(f"http://127.0.0.1:{port}/mosaic/summary.json")["header"]["runs"] == 5
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=DEADLINE_S) == 0


def test_the_json_of_a_100000_run_store_stays_small(tmp_path: Path) -> None:
    large_store(tmp_path / "big", fail_every=101)
    with mosaic.ui(tmp_path / "big", port=0) as server:
        status, _, summary = get(server.url + "/summary.json")
        _, _, page = get(server.url + f".json?sort=test_loss&limit={views.MAX_PAGE}")
        _, _, failed = get(server.url + ".json?state=failed&q=model_00")
    body = json.loads(summary)
    assert status == 200 and body["header"]["runs"] == 100_000 and body["groups"]["total"] == 10_000
    assert body["header"]["counts"]["error"] == 990 and body["failures"]["total"] == 990
    assert len(summary) < 150_000 and len(page) < 250_000, (len(summary), len(page))
    failed_of_the_first_100_models = sum(1 for i in range(1, 100_001) if i % 101 == 0 and (i - 1) % 10_000 < 1000)
    assert len(json.loads(page)["runs"]) == views.MAX_PAGE and json.loads(failed)["total"] == failed_of_the_first_100_models
