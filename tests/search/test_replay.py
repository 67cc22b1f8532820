"""``mosaic replay``: halving replayed on finished full-grid stores written by the real writer,
and on a real grid swept beside a real halving sweep of the same config."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import mosaic
from mosaic.cli import main
from mosaic.errors import StoreError, UsageError
from mosaic.exec.driver.commands import run
from tests.helpers.curves import Curve, curve_store, falling, halving_store
from tests.helpers.scores import model_pipeline, scored_store


def _replicates(dataset: str, model: str, start: float, end: float, count: int = 3) -> list[Curve]:
    return [(dataset, model, falling(start, end, 0.001 * i)) for i in range(count)]


#: OR: six models, "best" ahead from the first epoch; XOR: two models. Three replicates each.
GRID: list[Curve] = [
    *_replicates("OR", "best", 0.5, 0.01), *_replicates("OR", "second", 0.6, 0.05),
    *_replicates("OR", "m3", 0.7, 0.1), *_replicates("OR", "m4", 0.8, 0.2),
    *_replicates("OR", "m5", 0.9, 0.3), *_replicates("OR", "m6", 1.0, 0.4),
    *_replicates("XOR", "best", 0.5, 0.01), *_replicates("XOR", "second", 0.6, 0.05),
]


def test_replay_stops_the_pipelines_halving_would_and_counts_the_epochs(tmp_path: Path) -> None:
    # run 25: a fourth m6 replicate that failed at its third epoch (two in its history)
    runs = [*GRID, ("OR", "m6", falling(1.0, 0.4)[:2])]
    curve_store(tmp_path / "store", runs, failed=[25], epochs=9)
    result = mosaic.replay(tmp_path / "store")
    assert result.rungs == (1, 3)
    cut = {(c.dataset, c.model, c.rung): (c.kept, c.runs, c.rank) for c in result.cuts}
    # OR, rung 1: six pipelines, the best two go on; the failed run is judged with its replicates
    assert cut[("OR", "best", 1)] == (True, (1, 2, 3), 1)
    assert cut[("OR", "second", 1)] == (True, (4, 5, 6), 2)
    assert [m for (d, m, r), (kept, _, _) in cut.items() if d == "OR" and r == 1 and not kept] == ["m3", "m4", "m5", "m6"]
    assert cut[("OR", "m6", 1)][1] == (16, 17, 18, 25)
    # OR, rung 3: two left, one kept; XOR: two pipelines keep one at rung 1, the only one left at rung 3
    assert cut[("OR", "best", 3)][0] and not cut[("OR", "second", 3)][0]
    assert not cut[("XOR", "second", 1)][0] and cut[("XOR", "best", 3)][0]
    assert len(result.cuts) == 6 + 2 + 2 + 1
    assert dict(result.stopped) == {**dict.fromkeys([*range(7, 19), 25], 1), 4: 3, 5: 3, 6: 3, 22: 1, 23: 1, 24: 1}
    # the grid trained 24 runs x 9 epochs + 2; halving: 16 runs to epoch 1, 3 to epoch 3, 6 to the end
    effort = result.effort
    assert (effort.planned, effort.trained, effort.saved) == (218, 16 + 9 + 54, 218 - 79)
    assert effort.stopped == {1: 5, 3: 1} and effort.pipelines == 8
    # the verdict's best survived on both datasets
    assert [(s.dataset, s.model, s.verdict, s.survived) for s in result.survival] == [
        ("OR", "best", "best", True), ("XOR", "best", "best", True)]
    assert result.best_survived
    text = result.render()
    for words in ("reduction factor 3, min_epochs 1", "rungs at epochs 1, 3", "epochs: 218 trained by the grid, 79 by halving: "
                  "139 saved (63.8%)", "stopped: 6 of 8 pipelines (5 at epoch 1, 1 at epoch 3)",
                  "survived to the last epoch", "the verdict's best survived halving on every dataset"):
        assert words in text
    assert re.search(r"\nOR +1 +6 +best, second +m3, m4, m5, m6\n", text)


def test_replay_says_when_the_verdicts_best_would_not_survive(tmp_path: Path) -> None:
    # "late" is the worst at epoch 1 and the best at the end
    runs = [*_replicates("OR", "early", 0.5, 0.05), *_replicates("OR", "steady", 0.6, 0.08),
            *_replicates("OR", "late", 1.5, 0.005)]
    curve_store(tmp_path / "store", runs)
    result = mosaic.replay(tmp_path / "store", reduction_factor=3)
    assert [(s.model, s.verdict, s.stopped_at) for s in result.survival] == [("late", "best", 1)]
    assert not result.best_survived
    assert result.stopped == {**dict.fromkeys(range(4, 10), 1)}
    assert "halving would have stopped the verdict's best: late on OR at epoch 1" in result.render()
    # a later first rung gives it the chance: at epoch 4 it leads
    later = mosaic.replay(tmp_path / "store", min_epochs=4)
    assert later.rungs == (4,) and later.best_survived and later.stopped == {**dict.fromkeys(range(1, 7), 4)}


def test_without_a_verdict_the_best_mean_stands_in(tmp_path: Path) -> None:
    runs = [*_replicates("OR", "early", 0.5, 0.05, count=2), *_replicates("OR", "late", 1.5, 0.005, count=2)]
    curve_store(tmp_path / "store", runs)
    result = mosaic.replay(tmp_path / "store")
    assert [(s.model, s.verdict, s.survived) for s in result.survival] == [("late", "inconclusive", False)]
    assert "inconclusive (best mean)" in result.render()


def test_the_cli_prints_json_and_writes_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    curve_store(store, GRID)
    assert main(["replay", str(store), "--format", "json", "--reduction-factor", "2"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["reduction_factor"], body["rungs"], body["best_survived"]) == (2, [1, 2, 4, 8], True)
    assert body["epochs"]["grid"] == 24 * 9 and body["epochs"]["saved"] == body["epochs"]["grid"] - body["epochs"]["halving"]
    assert [(v["dataset"], v["model"], v["survived"]) for v in body["verdict"]] == [("OR", "best", True), ("XOR", "best", True)]
    assert body["decisions"][0] == {"dataset": "OR", "model": "best", "rung": 1, "runs": "1,2,3", "metric": "test_loss",
                                    "value": pytest.approx(0.501), "cutoff": pytest.approx(0.701), "kept": True,
                                    "rank": 1, "pipelines": 6, "reason": "rank 1 of 6: in the best 3 (1/2)"}
    out = tmp_path / "decisions.csv"
    assert main(["replay", str(store), "--format", "csv", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"replay written to {out}"
    lines = out.read_text().splitlines()
    assert lines[0] == "dataset,model,rung,runs,metric,value,cutoff,kept,rank,pipelines,reason" and len(lines) == 1 + 11


def test_bad_input_is_one_line_naming_the_value_and_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    curve_store(store, GRID)
    with pytest.raises(UsageError, match=r"--reduction-factor 1: .* 2 or more"):
        mosaic.replay(store, reduction_factor=1)
    with pytest.raises(UsageError, match=r"--min-epochs 9: not below the runs' 9 epochs.*use at most 8"):
        mosaic.replay(store, min_epochs=9)
    with pytest.raises(UsageError, match=r"--metric nb_params: .*test_loss"):
        mosaic.replay(store, metric="nb_params")
    with pytest.raises(StoreError, match="no Mosaic store here"):
        mosaic.replay(tmp_path / "nowhere")
    # a store without history (runs scored only)
    scored_store(tmp_path / "scored", [(model_pipeline("OR", "m"), "done", {"test_loss": 0.1})])
    with pytest.raises(StoreError, match="no run has a loss history"):
        mosaic.replay(tmp_path / "scored")
    for argv, words in ((["--min-epochs", "12"], "--min-epochs 12: not below"), (["--reduction-factor", "0"], "must be 2 or more")):
        assert main(["replay", str(store), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("mosaic replay: error: ") and words in err


def test_a_halving_store_is_refused_with_where_to_look(tmp_path: Path) -> None:
    halving_store(tmp_path / "halving", GRID)
    with pytest.raises(StoreError, match=r"18 runs were stopped by a search: replay needs a full grid.*'mosaic status'"):
        mosaic.replay(tmp_path / "halving")
    # ... and a store whose runs have not all finished
    curve_store(tmp_path / "mid", GRID[:3])
    scored_store(tmp_path / "mid", [(model_pipeline("OR", "best"), "running", {})])
    with pytest.raises(StoreError, match=r"1 runs have not finished.*mosaic resume"):
        mosaic.replay(tmp_path / "mid")


TINY = """[PROCESS]
lr = 5e-2
epochs = 4
loss_function = MSELoss
data_scheme = dataset
pipeline_scheme = mlp
run_files_path = files
seed = 5

[MONITOR]
need_gpu = False
gpu_available = None
nb_processus = 2
multiplicity = 2
cache_database_path = cache
cache_size = 10M

[dataset_OR]
type = dataset
class = dataset_OR
path_to_class = ./dataset.py
batch_size = 8
data_size = 40
train_prop = 0.8
key = OR

[mlp_brick]
type = mlp
class = mlp_brick
path_to_class = ./mlp.py
key = brick_{width}
length = 2
width = {2-5}
"""


def test_replaying_a_real_grid_gives_the_real_halving_sweeps_decisions(tutorial_dir: Path, dask_client: Any) -> None:
    grid, halving = tutorial_dir / "grid.ini", tutorial_dir / "halving.ini"
    grid.write_text(TINY)
    # run files of its own: its runs' checkpoints are not the grid's
    halving.write_text(TINY.replace("run_files_path = files", "run_files_path = files_halving")
                       + "\n[SEARCH]\nstrategy = halving\nreduction_factor = 2\n")
    run(grid, tutorial_dir / "grid", dask_client)
    run(halving, tutorial_dir / "halving", dask_client)
    replayed = mosaic.replay(tutorial_dir / "grid", reduction_factor=2)
    with mosaic.open_store(tutorial_dir / "halving") as session:
        swept = session.fetch("SELECT dataset, model, rung, runs, value, kept, rank FROM decisions ORDER BY rung, rank")
        trained = session.fetch("SELECT count(*) FROM history")[0][0]
    assert [(c.dataset, c.model, c.rung, ",".join(map(str, c.runs)), c.value, c.kept, c.rank)
            for c in sorted(replayed.cuts, key=lambda c: (c.rung, c.rank))] == swept
    assert replayed.rungs == (1, 2) and len(swept) == 4 + 2
    assert replayed.effort.trained == trained
