"""plotloss, metaplot and report on real stores and on the original tool's database.

PDFs are parsed back with pypdf (page count, text); the other formats are checked for
their file signature, and the HTML specs are rendered again with vl-convert.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import vl_convert as vlc
from pypdf import PdfReader

import mosaic
from mosaic.analysis.report import metaplot, plotloss, report
from mosaic.analysis.search_report import search_summary
from mosaic.cli import main
from mosaic.errors import SelectionError, StoreError, UsageError
from mosaic.search.decisions import read_effort
from tests.helpers import LEGACY
from tests.helpers.curves import FOUR_MODELS, curve_store, falling, halving_store
from tests.helpers.stores import TWELVE, analysis_store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return analysis_store(tmp_path / "results", TWELVE, no_history=(11,))


def _pdf(path: Path) -> tuple[int, list[str]]:
    reader = PdfReader(path)
    return len(reader.pages), [" ".join(page.extract_text().split()) for page in reader.pages]


# -- plotloss --------------------------------------------------------------------------------
@pytest.mark.parametrize("plot_size", [1, 2, 3])
def test_plotloss_pages_and_titles(store: Path, tmp_path: Path, plot_size: int) -> None:
    out = tmp_path / "loss.pdf"
    result = plotloss(store, out, plot_size=plot_size)
    drawn = 10  # runs 1-10 have a history; 11 has none, 12 failed without one
    pages, texts = _pdf(out)
    assert pages == result.pages == math.ceil(drawn / plot_size**2)
    assert result.runs == drawn
    text = " ".join(texts)
    for run_id, width in ((1, 2), (3, 3), (5, 8)):
        nb = 4 * width * width + 3 * width + 1
        assert f"{run_id}: dataset_OR(1,200,0.8) | mlp_funnel(4,{width}) : {nb}" in text
    assert "overfit 0.2; trainability" in text and "slope -0.01 (+0.001/-0.002)" in text
    assert "No loss history for runs 11, 12" in texts[-1]
    assert "11, 12" not in " ".join(texts[:-1])
    assert "no loss history for runs 11, 12" in result.render()
    assert str(out) in result.render()


def test_plotloss_selection_flags(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "sel.pdf"
    cases = {
        mosaic.Selection(ids="1-3,7"): [1, 2, 3, 7],
        mosaic.Selection(request="SELECT run_id FROM run_results WHERE nb_params > 100"): [5, 6, 11],
        mosaic.Selection(equal=("mlp_key", "mlp_brick")): [7, 8, 9, 10, 11, 12],
        # numeric comparison: as text '8' > '10' would keep width 8 out
        mosaic.Selection(below=("mlp_funnel_width", "10")): [1, 2, 3, 4, 5, 6],
        mosaic.Selection(above=("mlp_brick_width", "2.5")): [9, 10, 11, 12],
    }
    for selection, expected in cases.items():
        result = plotloss(store, out, selection=selection, plot_size=2)
        with_history = [i for i in expected if i not in (11, 12)]
        assert result.runs == len(with_history), selection
        pages, texts = _pdf(out)
        assert pages == math.ceil(len(with_history) / 4)
        titles = [int(m) for m in re.findall(r"(\d+): dataset_OR", " ".join(texts))]
        assert titles == with_history, selection


def test_plotloss_unknown_ids_are_a_clear_error(store: Path, tmp_path: Path) -> None:
    with pytest.raises(SelectionError, match=r"run ids 99-100 are not in .*results \(it holds 1-12\)"):
        plotloss(store, tmp_path / "x.pdf", selection=mosaic.Selection(ids="3,99-100"))
    assert not (tmp_path / "x.pdf").exists()


def test_plotloss_bad_output_and_plot_size(store: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.pdf, \.png, \.svg, \.html"):
        plotloss(store, tmp_path / "x.jpg")
    with pytest.raises(UsageError, match="does not exist"):
        plotloss(store, tmp_path / "nowhere" / "x.pdf")
    with pytest.raises(UsageError, match="plot_size"):
        plotloss(store, tmp_path / "x.pdf", plot_size=0)


def test_plotloss_other_formats_and_log_scale(store: Path, tmp_path: Path) -> None:
    result = plotloss(store, tmp_path / "loss.png", plot_size=2, log_scale=True)
    assert [f.name for f in result.files] == ["loss-1.png", "loss-2.png", "loss-3.png"]
    assert all(f.read_bytes().startswith(b"\x89PNG") for f in result.files)
    result = plotloss(store, tmp_path / "one.svg", selection=mosaic.Selection(ids="1"), plot_size=2)
    assert result.files == (tmp_path / "one.svg",) and "<svg" in (tmp_path / "one.svg").read_text()
    plotloss(store, tmp_path / "loss.html", plot_size=3)
    assert "vegaEmbed" in (tmp_path / "loss.html").read_text()


def test_plotloss_when_no_run_has_history(tmp_path: Path) -> None:
    path = analysis_store(tmp_path / "s", [("mlp_funnel", 2, "error"), ("mlp_funnel", 2, "error")])
    result = plotloss(path, tmp_path / "x.pdf")
    pages, texts = _pdf(tmp_path / "x.pdf")
    assert pages == 1 and "No loss history for runs 1, 2" in texts[0]
    assert result.runs == 0


# -- metaplot --------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".pdf", ".png", ".svg", ".html"])
def test_metaplot_every_format(store: Path, tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"meta{ext}"
    result = metaplot(store, out, "dataset_OR", "test_loss")
    assert result.runs == 11
    assert "1 failed run left out" in result.render()
    data = out.read_bytes()
    if ext == ".pdf":
        pages, texts = _pdf(out)
        assert pages == 1
        assert "test_loss vs nb_params — dataset_OR" in texts[0] and "1 failed run left out" in texts[0]
        assert "mlp_funnel" in texts[0] and "mlp_brick" in texts[0]
    elif ext == ".png":
        assert data.startswith(b"\x89PNG")
    elif ext == ".svg":
        assert b"<svg" in data[:200]
    else:
        assert b'"bind": "legend"' in data and b"vegaEmbed" in data


def test_metaplot_group_by_and_criteria(store: Path, tmp_path: Path) -> None:
    result = metaplot(store, tmp_path / "m.pdf", "dataset_OR", "duration(s)", group_by="mlp_funnel_width")
    assert "3 lines" in result.render()
    assert result.runs == 6


def test_metaplot_errors(store: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="use one of: train_loss, test_loss"):
        metaplot(store, tmp_path / "m.pdf", "dataset_OR", "loss")
    with pytest.raises(UsageError, match="dataset keys in this store: dataset_OR"):
        metaplot(store, tmp_path / "m.pdf", "dataset_XOR", "test_loss")
    with pytest.raises(UsageError, match="unknown output format"):
        metaplot(store, tmp_path / "m.txt", "dataset_OR", "test_loss")
    with pytest.raises(StoreError):
        metaplot(tmp_path / "missing", tmp_path / "m.pdf", "dataset_OR", "test_loss")


# -- report ----------------------------------------------------------------------------------
def test_report_pdf(store: Path, tmp_path: Path) -> None:
    result = report(store, tmp_path / "report.pdf")
    pages, texts = _pdf(tmp_path / "report.pdf")
    # the verdict first, then the summary, one page for the dataset key, one page of best-run curves (2 models)
    assert pages == result.pages == 4
    assert "Mosaic study report" in texts[0] and "12 runs: 11 done, 1 error" in texts[0]
    assert "The verdict on test_loss" in texts[0] and "permutation test" in texts[0]
    assert "mlp_funnel" in texts[1] and "mlp_brick" in texts[1]
    assert "test_loss vs nb_params — dataset_OR" in texts[2] and "overfit vs nb_params — dataset_OR" in texts[2]
    # best = lowest test_loss: widest models; mlp_brick's best (run 11) has no history
    assert "Best run of each model" in texts[3]
    assert "5: dataset_OR(1,200,0.8) | mlp_funnel(4,8) : 281" in texts[3]
    assert "No loss history for run 11" in texts[3]
    assert "12 runs: 11 done, 1 error" in result.render()
    assert "verdict: mlp_funnel best on dataset_OR" in result.render()


def test_report_html_is_interactive(store: Path, tmp_path: Path) -> None:
    report(store, tmp_path / "report.html")
    text = (tmp_path / "report.html").read_text()
    assert "<table" in text and "Best runs per model key and dataset key" in text
    # the answer before the evidence: the verdict comes first
    assert text.index("The verdict") < text.index("Best runs per model key")
    specs = json.loads(re.search(r"const specs = (.*);\n", text).group(1))
    assert len(specs) == 3  # the verdict's intervals, the metaplots of dataset_OR, the best runs' loss curves
    assert "The verdict on test_loss" in json.dumps(specs["chart1"])
    meta = next(json.dumps(spec) for spec in specs.values() if "vs nb_params" in json.dumps(spec))
    assert '"bind": "legend"' in meta and '"field": "run_id"' in meta and '"field": "pipeline"' in meta
    for spec in specs.values():
        assert vlc.vegalite_to_svg(spec).startswith("<svg")


def test_the_search_section_counts_epochs_and_names_the_stops(tmp_path: Path) -> None:
    # halving (factor 2, rungs 1, 2, 4, 8): c and d stopped at epoch 1, b at epoch 2, a trained to 9
    halving_store(tmp_path / "halving", FOUR_MODELS, reduction_factor=2)
    searched = read_effort(tmp_path / "halving")
    assert searched is not None
    summary = search_summary(*searched)
    assert (summary.effort.planned, summary.effort.trained, summary.effort.saved) == (72, 4 * 1 + 2 * 2 + 2 * 9, 46)
    assert summary.stopped.to_dict(orient="list") == {
        "dataset": ["OR", "OR", "OR"], "model": ["c", "d", "b"], "stopped at epoch": [1, 1, 2],
        "runs": ["5, 6", "7, 8", "3, 4"],
        "reason": ["rank 3 of 4: mean test_loss 0.7 above the cutoff 0.6",
                   "rank 4 of 4: mean test_loss 0.8 above the cutoff 0.6",
                   f"rank 2 of 2: mean test_loss {falling(0.6, 0.06)[1]:.4g} above the cutoff {falling(0.5, 0.05)[1]:.4g}"]}
    assert summary.lines()[0] == "epochs: 26 trained; a full grid plans 72; the stops saved 46 (63.9%)"
    assert summary.lines()[1].startswith("stopped: 3 of 4 pipelines (2 at epoch 1, 1 at epoch 2)")
    # a full grid has no search section
    curve_store(tmp_path / "grid", FOUR_MODELS)
    assert read_effort(tmp_path / "grid") is None


def test_the_report_shows_the_search_after_the_verdict(tmp_path: Path) -> None:
    halving_store(tmp_path / "halving", FOUR_MODELS, reduction_factor=2)
    html = report(tmp_path / "halving", tmp_path / "report.html")
    text = (tmp_path / "report.html").read_text()
    assert text.index("The verdict") < text.index("<h2>Search</h2>") < text.index("Best runs per model key")
    assert "the stops saved 46 (63.9%)" in text and "<td>rank 3 of 4: mean test_loss 0.7 above the cutoff 0.6</td>" in text
    assert "search: 3 of 4 pipelines stopped, 46 of 72 planned epochs saved" in html.render()
    result = report(tmp_path / "halving", tmp_path / "report.pdf")
    pages, texts = _pdf(tmp_path / "report.pdf")
    assert pages == result.pages and "Search: the pipelines stopped, where and why" in texts[1]
    assert "8 runs: 6 stopped, 2 done" in texts[0] and "the stops saved 46 (63.9%)" in texts[1]
    # a full grid's report has none
    curve_store(tmp_path / "grid", FOUR_MODELS)
    report(tmp_path / "grid", tmp_path / "grid.html")
    assert "<h2>Search</h2>" not in (tmp_path / "grid.html").read_text()


def test_report_rejects_other_formats(store: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.html or \.pdf"):
        report(store, tmp_path / "report.png")


# -- the original tool's database ------------------------------------------------------------
@pytest.fixture
def legacy(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(LEGACY, tmp_path / "legacy")
    return tmp_path / "legacy" / "legacy_sample.db", tmp_path / "legacy" / "legacy_runs"


def test_legacy_database_plotloss(legacy: tuple[Path, Path], tmp_path: Path) -> None:
    db, runs = legacy
    result = plotloss(db, tmp_path / "loss.pdf", runs, selection=mosaic.Selection(ids="all"))
    pages, texts = _pdf(tmp_path / "loss.pdf")
    assert pages == 2 and result.runs == 6
    assert "1: dataset_OR(4,80,0.8) | mlp_brick(2,2) : 15" in texts[0]
    assert "No loss history for runs 7, 8" in texts[-1]


def test_legacy_database_metaplot_and_report(legacy: tuple[Path, Path], tmp_path: Path) -> None:
    db, runs = legacy
    result = metaplot(db, tmp_path / "meta.pdf", "data_dataset_OR", "test_loss")
    assert result.runs == 6 and "2 failed runs left out" in result.render()
    assert "brick_3" in _pdf(tmp_path / "meta.pdf")[1][0]
    result = report(db, tmp_path / "report.pdf", run_files=runs)
    pages, texts = _pdf(tmp_path / "report.pdf")
    assert pages == 4 and "8 runs: 6 done, 2 error" in texts[0]
    assert "inconclusive" in texts[0]  # 2 replicates per model: the verdict says how many to add
    assert "broken" in texts[1]  # the failing model's row: 2 runs, 2 failed, no best run


def test_cli_commands(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plotloss", str(store), str(tmp_path / "l.pdf"), "-id", "1-5", "-plot_size", "2"]) == 0
    assert "2 pages, 5 runs" in capsys.readouterr().out
    assert main(["metaplot", str(store), str(tmp_path / "m.svg"), "dataset_OR", "overfit"]) == 0
    assert "1 failed run left out" in capsys.readouterr().out
    assert main(["report", str(store), str(tmp_path / "r.html")]) == 0
    assert "r.html" in capsys.readouterr().out
    assert main(["metaplot", str(store), str(tmp_path / "m.svg"), "dataset_OR", "bogus"]) == 2
    assert "use one of" in capsys.readouterr().err


def test_legacy_database_without_run_files(legacy: tuple[Path, Path], tmp_path: Path) -> None:
    db, runs = legacy
    result = plotloss(db, tmp_path / "none.pdf", selection=mosaic.Selection(ids="1-2"))
    assert result.runs == 0 and "give its run-files folder" in result.render()
    # the original's config said run_files_path = runs: found next to the database
    runs.rename(db.parent / "runs")
    result = plotloss(db, tmp_path / "found.pdf", selection=mosaic.Selection(ids="1-2"))
    assert result.runs == 2 and _pdf(tmp_path / "found.pdf")[0] == 1


def test_loss_pages_keep_the_given_run_order(store: Path) -> None:
    from mosaic.analysis.report import loss_page_charts
    from mosaic.store.session import open_store

    with open_store(store) as session:
        charts, missing = loss_page_charts(session, [5, 1, 11, 2], plot_size=1)
    assert missing == [11] and len(charts) == 3
    firsts = []
    for chart in charts:
        spec = chart.to_dict()
        firsts.append([row["run_id"] for rows in spec["datasets"].values() for row in rows][0])
    assert firsts == [5, 1, 2]


