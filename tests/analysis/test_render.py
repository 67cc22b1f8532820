"""Rendering charts to files (mosaic.analysis.render): in parallel child processes, and in this
process when a child fails."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.helpers.stores import TWELVE, analysis_store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return analysis_store(tmp_path / "results", TWELVE, no_history=(11,))


def test_render_all_in_parallel_and_when_a_child_fails(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mosaic.analysis import render as module
    from mosaic.analysis.report import loss_page_charts
    from mosaic.store.session import open_store

    with open_store(store) as session:
        charts, _ = loss_page_charts(session, list(range(1, 11)), plot_size=1)
    serial = module.render_all(charts[:3], "svg", processes=1)
    assert module.render_all(charts[:3], "svg", processes=2) == serial
    monkeypatch.setattr(module, "_CHILD", "raise SystemExit(3)")
    pages = module.render_all(charts[:3], "pdf", processes=3)
    assert len(pages) == 3 and all(page.startswith(b"%PDF") for page in pages)
    for run_id, page in enumerate(pages, 1):
        text = " ".join(PdfReader(io.BytesIO(page)).pages[0].extract_text().split())
        assert f"{run_id}: dataset_OR(1,200,0.8)" in text
