"""``mosaic verdict`` and the ``verdict`` SQL relation, on real stores written by the writer."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mosaic
from mosaic.analysis.sql import query
from mosaic.cli import main
from mosaic.errors import MosaicError, UsageError
from tests.helpers import LEGACY_DB
from tests.helpers.scores import model_pipeline, scored_store

#: true mean test_loss of each model (brick best, wide close to it, funnel far worse)
TRUTH = {"brick": 0.10, "wide": 0.11, "funnel": 0.20}


def _store(path: Path, replicates: int = 6, datasets: tuple[str, ...] = ("OR", "XOR", "AND"), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    runs = [(model_pipeline(d, m), "done", {"test_loss": v, "test_acc": 1 - v})
            for d in datasets for m, mu in TRUTH.items() for v in rng.normal(mu, 0.005, replicates)]
    runs.append((model_pipeline("OR", "brick"), "error", {}))
    scored_store(path, runs)
    return path


def test_the_api_finds_the_known_best_and_says_how(tmp_path: Path) -> None:
    result = mosaic.verdict(_store(tmp_path / "store"))
    table = result.table.set_index(["dataset", "model"])
    for dataset in ("OR", "XOR", "AND"):
        assert table.loc[(dataset, "brick"), "verdict"] == "best"
        assert table.loc[(dataset, "funnel"), "verdict"] == "worse"
        assert table.loc[(dataset, "brick"), "n"] == 6
    assert result.across is not None
    assert result.across.set_index("model")["verdict"].to_dict() == {"brick": "best", "wide": "tied", "funnel": "worse"}
    text = result.render()
    for words in ("test_loss (lower is better)", "permutation test", "Holm", "level 0.95", "6 replicates each",
                  "tied: not distinguishable from the best", "Friedman", "runs not done: 1"):
        assert words in text
    # an accuracy: higher is better by its name
    accuracy = mosaic.verdict(tmp_path / "store", metric="test_acc")
    assert accuracy.higher_is_better
    assert set(accuracy.table.loc[accuracy.table["verdict"] == "best", "model"]) == {"brick"}


def test_too_few_replicates_say_how_many_to_add(tmp_path: Path) -> None:
    result = mosaic.verdict(_store(tmp_path / "store", replicates=2, datasets=("OR",)))
    assert set(result.table["verdict"]) == {"inconclusive"}
    assert result.table["to_add"].tolist() == [1, 1, 1]
    assert result.across is None
    assert "too few replicates: 3 of 3 models cannot be judged yet" in result.render()


def test_the_cli_writes_json_and_csv_and_gives_the_same_verdict_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(tmp_path / "store")
    out = tmp_path / "verdict.json"
    assert main(["verdict", str(store), "--format", "json", "-o", str(out), "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == f"verdict written to {out}"
    body = json.loads(out.read_text())
    assert body["level"] == 0.95 and body["seed"] == 3 and len(body["datasets"]) == 9
    assert {r["model"] for r in body["datasets"] if r["verdict"] == "best"} == {"brick"}
    assert [r["model"] for r in body["across_datasets"]] == ["brick", "wide", "funnel"]
    again = tmp_path / "again.json"
    assert main(["verdict", str(store), "--format", "json", "-o", str(again), "--seed", "3"]) == 0
    assert again.read_bytes() == out.read_bytes()  # bit for bit
    capsys.readouterr()
    assert main(["verdict", str(store), "--format", "csv", "--level", "0.9", "--rope", "0.05"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(frame.columns[:6]) == ["dataset", "model", "n", "mean", "ci_low", "ci_high"]
    assert set(frame.loc[frame["model"] == "wide", "verdict"]) == {"tied"}  # within ±0.05 of brick


def test_the_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(tmp_path / "store", datasets=("OR",))
    out = tmp_path / "out.csv"
    assert main(["verdict", str(store), "--metric", "nope", "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--metric nope: not a numeric column of run_results; use one of: train_loss" in error
    assert main(["verdict", str(store), "--metric", "slope", "-o", str(out)]) == 2
    assert "add --higher-is-better or --lower-is-better" in capsys.readouterr().err
    assert main(["verdict", str(store), "--level", "2"]) == 2
    assert main(["verdict", str(store), "-o", str(store / "inside.csv")]) == 2
    assert not out.exists() and not (store / "inside.csv").exists()
    assert main(["verdict", str(store), "--metric", "nb_params", "--lower-is-better"]) == 2  # no value stored
    assert "no done run has a nb_params value" in capsys.readouterr().err


def test_sql_sees_the_verdict(tmp_path: Path) -> None:
    store = _store(tmp_path / "store")
    text = query(store, "SELECT dataset, model FROM verdict WHERE verdict='best' ORDER BY dataset", format="json")
    assert json.loads(text) == [{"dataset": d, "model": "brick"} for d in ("AND", "OR", "XOR")]
    across = json.loads(query(store, 'SELECT model, "verdict" FROM verdict_across ORDER BY rank', format="json"))
    assert [r["model"] for r in across] == ["brick", "wide", "funnel"]
    api = mosaic.verdict(store).table
    joined = query(store, "SELECT v.mean, r.n FROM verdict v JOIN (SELECT count(*) AS n FROM runs) r ON true "
                   "ORDER BY v.dataset, v.rank", format="csv")
    assert pd.read_csv(io.StringIO(joined))["mean"].tolist() == pytest.approx(api["mean"].tolist())


def test_the_verdict_is_computed_only_when_sql_names_it(tmp_path: Path) -> None:
    # no run is done: the verdict cannot be made, yet other queries never try
    store = scored_store(tmp_path / "store", [(model_pipeline("OR", "brick"), "error", {})]).path
    assert "1" in query(store, "SELECT count(*) AS n FROM runs WHERE status <> 'verdict'")
    with pytest.raises(UsageError, match="no done run has a test_loss value"):
        query(store, "SELECT * FROM verdict")
    code = ("import sys; from mosaic.analysis.sql import query; "
            f"query({str(store)!r}, 'SELECT count(*) FROM runs'); print('scipy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False"


def test_a_database_of_the_original_tool_gets_a_verdict(tmp_path: Path) -> None:
    result = mosaic.verdict(LEGACY_DB)
    assert len(result.table) >= 1 and set(result.table["verdict"]) <= {"best", "tied", "worse", "inconclusive"}
    with pytest.raises(MosaicError):
        mosaic.verdict(LEGACY_DB, format="parquet")
