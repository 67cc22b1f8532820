"""One rule for "dataset" and "model" (:func:`mosaic.sweep.dataset_and_model`): the summary
``mosaic run`` prints and the report's tables agree on a real store."""

from __future__ import annotations

from pathlib import Path

from mosaic import sweep as sweeps
from mosaic.analysis import plots
from mosaic.analysis.report import load_params, load_runs
from mosaic.config import load_config
from mosaic.exec.driver.summary import SweepSummary, model_key
from mosaic.store.reader import open_reader
from tests.helpers.scores import model_pipeline, scored_store

# two model types: the old report rule (last section's key) pooled enc variants together
_HEAD = """
[head]
type = head
class = mlp_brick
path_to_class = ./mlp.py
key = head_{width}
length = 1
width = {1-2}
"""


def test_the_rule_joins_every_key_of_each_scheme_part() -> None:
    pipe = [{"type": "d", "class": "D", "key": "OR"}, {"type": "e", "class": "E"},
            {"type": "m", "class": "M", "key": "funnel_3"}]
    assert sweeps.dataset_and_model(pipe, ("d",), ("e", "m")) == ("OR", "E | funnel_3")
    assert sweeps.dataset_and_model(pipe, ("d", "e"), ("m",)) == ("OR | E", "funnel_3")
    # a <type>_key param (rekey) wins over the section's key
    assert sweeps.dataset_and_model(pipe, ("d",), ("e", "m"), {"m": "renamed"}) == ("OR", "E | renamed")
    # no schemes recorded: the first section type is the dataset, the last the model
    assert sweeps.dataset_and_model(pipe) == ("OR", "funnel_3")
    assert sweeps.dataset_and_model([]) == (None, None)
    assert sweeps.scheme_types(" mlp, head ") == ("mlp", "head")


def test_summary_and_report_name_the_same_models(tutorial_dir: Path, tmp_path: Path) -> None:
    config_path = tutorial_dir / "config.ini"
    text = config_path.read_text().replace("pipeline_scheme = mlp", "pipeline_scheme = mlp, head")
    config_path.write_text(text.replace("multiplicity = 4", "multiplicity = 2") + _HEAD)
    config = load_config(config_path)
    pipelines = sweeps.generate(config)
    assert len(pipelines) == 2 * 3 * 2 * 2  # two mlp classes x widths 2-4 x two heads x replicates
    losses = [0.5 + (i % 7) / 10 for i in range(len(pipelines))]
    store = scored_store(tmp_path / "store", [(p, "done", {"test_loss": loss}) for p, loss in zip(pipelines, losses, strict=True)],
                         process=config.process.raw)
    summary = SweepSummary(store.path, 1, "run", tuple(
        (run_id, "done", loss, model_key(pipe, config))
        for run_id, (pipe, loss) in enumerate(zip(pipelines, losses, strict=True), start=1)), ("done",) * len(losses),
        1.0, tmp_path)
    with open_reader(store.path) as reader:
        keys = plots.run_keys(load_runs(reader), load_params(reader))
    assert set(keys["model_key"]) == set(summary.best()) == {
        f"{family} | head_{w}" for family in ("mlp_funnel", "mlp_brick") for w in (1, 2)}
    assert set(keys["dataset_key"]) == {"dataset_OR"}
    by_report = keys.set_index("run_id")["model_key"].to_dict()
    assert all(by_report[run_id] == key for run_id, _, _, key in summary.runs)


def test_a_store_without_schemes_falls_back_to_the_first_and_last_sections(tmp_path: Path) -> None:
    store = scored_store(tmp_path / "store", [(model_pipeline("OR", "brick"), "done", {"test_loss": 1.0})], process=None)
    with open_reader(store.path) as reader:
        keys = plots.run_keys(load_runs(reader), load_params(reader))
    assert keys[["dataset_key", "model_key"]].values.tolist() == [["OR", "brick"]]
