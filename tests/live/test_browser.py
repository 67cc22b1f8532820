"""The live page in a real browser (headless Chromium): during a real sweep, from the scheduler's
page, and after it, from ``mosaic ui`` over the finished store. The rendered DOM holds the
charts' marks (Vega's SVG) and the dataset and model names."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import mosaic
from mosaic.exec.driver.commands import run
from mosaic.exec.wire.events import Event
from tests.helpers.browser import dump_dom
from tests.helpers.drivers import DEADLINE_S

MODELS = ("mlp_funnel", "mlp_brick")


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _wait_for(what: str, check: Any) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def _marks(dom: str, inside: str | None = None) -> set[str]:
    """The Vega marks drawn (``mark-line``, ``mark-area``...), in the element of id ``inside``."""
    if inside is not None:
        dom = dom[dom.index(f'id="{inside}"'):]
        dom = dom[:dom.index("</section>")]
    return set(re.findall(r'class="(mark-[a-z]+) role-mark', dom))


def _gated_sweep(sweep_dir: Path, gate: Path) -> Path:
    """Tiny's 4 pipelines x 2 replicates, 4 epochs each, every run held before its third epoch."""
    config = sweep_dir / "tiny.ini"
    text = config.read_text().replace("epochs = 1", "epochs = 4").replace("multiplicity = 1", "multiplicity = 2").replace(
        "class = dataset_OR\npath_to_class = ./dataset.py", f"class = dataset_gated\npath_to_class = ./gated.py\ngate = {gate}")
    assert "dataset_gated" in text and "multiplicity = 2" in text
    config.write_text(text)
    return config


def test_the_live_page_during_a_sweep_and_after_it(sweep_dir: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()  # no pass in it: every run waits before its third epoch until 'open' is there
    config = _gated_sweep(sweep_dir, gate)
    links: dict[str, str] = {}

    def on_event(event: Event) -> None:
        if event.kind == "cluster" and event.page:
            links["page"] = event.page

    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(summary=run(config, tmp_path / "store", on_event=on_event)),
                              daemon=True)
    thread.start()
    try:
        page = _wait_for("the page's link", lambda: links.get("page"))
        # two runs hold at the gate with their first two epochs told: the curves have points
        summary = _wait_for("epochs on the page", lambda: (s := _json(page + "/summary.json"))["curves"]["rows"] and s)
        during = dump_dom(page, tmp_path)
    finally:
        (gate / "open").touch()
    thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive() and outcome["summary"].exit_code == 0
    assert summary["header"]["counts"]["done"] == 0 and summary["header"]["counts"]["running"] >= 1
    assert {"mark-line", "mark-area"} <= _marks(during, "curves-section")
    assert "dataset_gated" in during and any(m in during for m in MODELS)
    assert "queued" in during and "ETA" in during

    with mosaic.ui(tmp_path / "store", port=0) as server:
        # the verdict so far is computed off the request path: ask, then wait until it is there
        _wait_for("the verdict", lambda: _json(server.url + "/summary.json")["verdict"])
        after = dump_dom(server.url, tmp_path)
        drill = dump_dom(server.url + "#run=1", tmp_path)
    assert {"mark-line", "mark-area"} <= _marks(after, "curves-section")
    assert all(model in after for model in MODELS) and "dataset_gated" in after
    assert re.search(r'id="verdict-section"(?![^>]*hidden)', after) and "v-best" in after
    assert "mark-line" in _marks(drill, "runs-section") and "run 1: dataset_gated" in drill
