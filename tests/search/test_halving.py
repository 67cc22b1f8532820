"""The halving rule on values: the cut, its order, replicates, failures and a resumed state."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from mosaic.search.halving import Entrant, Halving, judge
from mosaic.search.spec import SearchSpec

SPEC = SearchSpec(strategy="halving", metric="test_loss", reduction_factor=3, min_epochs=1)


def _entrants(models: int = 6, replicates: int = 2, total: int = 9, dataset: str = "D") -> list[Entrant]:
    return [Entrant(m * replicates + r + 1, dataset, f"m{m}", total) for m in range(models) for r in range(replicates)]


def _history(value: float, epochs: int) -> list[dict[str, float]]:
    return [{"epoch": e, "test_loss": value + e / 100, "test_acc": 1 - value} for e in range(1, epochs + 1)]


def test_rungs_are_min_epochs_times_powers_of_the_factor_below_the_planned_epochs() -> None:
    assert SPEC.rungs(9) == (1, 3)
    assert SPEC.rungs(50) == (1, 3, 9, 27)
    assert SearchSpec("halving", reduction_factor=2, min_epochs=2).rungs(8) == (2, 4)
    assert SearchSpec().rungs(50) == ()  # the grid has none


def test_judge_keeps_the_best_third_at_least_one_and_ranks_nan_last() -> None:
    cuts = judge(SPEC, "D", 1, {"a": [(1, 0.5)], "b": [(2, math.nan)], "c": [(3, 0.1)], "d": [(4, 0.3)]})
    assert [(c.model, c.rank, c.kept) for c in cuts] == [("c", 1, True), ("d", 2, False), ("a", 3, False), ("b", 4, False)]
    assert cuts[0].cutoff == 0.1 and "diverged" in cuts[3].reason
    assert judge(SPEC, "D", 1, {"alone": [(1, 9.0)]})[0].kept  # one pipeline: kept
    assert [c.kept for c in judge(SPEC, "D", 1, {m: [(i, float(i))] for i, m in enumerate("abcdef")})] == [True] * 2 + [False] * 4


def test_accuracies_are_maximised_and_ties_go_to_the_first_run_id() -> None:
    spec = SearchSpec("halving", metric="test_acc", reduction_factor=2)
    cuts = judge(spec, "D", 1, {"low": [(1, 0.2)], "high": [(2, 0.9)]})
    assert [(c.model, c.kept) for c in cuts] == [("high", True), ("low", False)]
    tied = judge(SPEC, "D", 1, {"late": [(7, 0.5)], "early": [(3, 0.5)], "x": [(9, 0.9)]})
    assert [c.model for c in tied] == ["early", "late", "x"]


def test_replicates_are_judged_together_on_their_mean() -> None:
    # m0's replicates: 0.1 and 0.9 (mean 0.5); m1's: 0.4 and 0.4 -> m1 is better, whatever m0's best run
    cuts = judge(SearchSpec("halving", reduction_factor=2), "D", 1, {"m0": [(1, 0.1), (2, 0.9)], "m1": [(3, 0.4), (4, 0.4)]})
    assert [(c.model, c.runs, c.kept) for c in cuts] == [("m1", (3, 4), True), ("m0", (1, 2), False)]
    assert cuts[1].row()["runs"] == "1,2" and cuts[1].row()["value"] == pytest.approx(0.5)


def _play(order: list[int], entrants: list[Entrant], values: dict[int, float]) -> list[tuple[str, int, bool]]:
    """Feed every run's arrivals in ``order`` at each stage until the sweep ends; the decisions."""
    state = Halving(SPEC, entrants)
    decided: list[tuple[str, int, bool]] = []
    queue = list(order)
    while queue:
        run = queue.pop(0)
        target = state.target(run) or 9
        step = state.reached(run, _history(values[run], target))
        decided += [(c.model, c.rung, c.kept) for c in step.cuts]
        queue += sorted(step.resume, key=lambda r: order.index(r))
    return decided


def test_the_decisions_do_not_depend_on_arrival_order() -> None:
    entrants = _entrants()
    values = {e.run_id: int(e.model[1:]) + random.Random(e.run_id).random() / 10 for e in entrants}
    ids = [e.run_id for e in entrants]
    first = _play(ids, entrants, values)
    for seed in range(5):
        shuffled = ids[:]
        random.Random(seed).shuffle(shuffled)
        assert _play(shuffled, entrants, values) == first
    assert first[:6] == [("m0", 1, True), ("m1", 1, True)] + [(f"m{i}", 1, False) for i in range(2, 6)]
    assert first[6:] == [("m0", 3, True), ("m1", 3, False)]


def test_a_rung_waits_for_every_live_run_of_its_dataset_and_never_for_other_datasets() -> None:
    entrants = _entrants(models=3, replicates=1) + _entrants(models=3, replicates=1, dataset="E")
    entrants = [Entrant(i + 1, e.dataset, e.model, e.total) for i, e in enumerate(entrants)]
    state = Halving(SPEC, entrants)
    assert not state.reached(1, _history(0.1, 1)).cuts and not state.reached(2, _history(0.2, 1)).cuts
    failed = state.dropped(3)  # the last live run of D fails: D's rung is complete without it
    assert failed.final and [(c.model, c.kept) for c in failed.cuts] == [("m0", True), ("m1", False)]
    assert failed.resume == [1] and failed.stop == [2]
    assert state.target(1) == 3 and state.target(4) == 1  # E is still at its first rung


def test_a_run_that_stopped_itself_before_the_rung_leaves_the_competition() -> None:
    state = Halving(SPEC, _entrants(models=2, replicates=1))
    assert state.reached(1, _history(0.1, 1)).cuts == []
    step = state.reached(2, [])  # patience ended it before its first epoch's end
    assert step.final and [(c.model, c.runs) for c in step.cuts] == [("m0", (1,))]


def test_a_resumed_state_goes_on_from_the_recorded_decisions() -> None:
    entrants = _entrants()
    values = {e.run_id: float(e.model[1:]) for e in entrants}
    straight = _play([e.run_id for e in entrants], entrants, values)
    recorded = {r: [(1, m in ("m0", "m1"))] for e in entrants for r, m in [(e.run_id, e.model)]}
    state = Halving(SPEC, entrants, recorded)
    assert state.stopped_before == list(range(5, 13))
    assert [state.target(r) for r in (1, 2, 3, 4)] == [3, 3, 3, 3]
    cuts = [c for r in (4, 2, 3, 1) for c in state.reached(r, _history(values[r], 3)).cuts]
    assert [(c.model, c.rung, c.kept) for c in cuts] == straight[6:]


@pytest.mark.parametrize("models", [1, 2, 4, 9])
def test_every_rung_keeps_at_least_one_pipeline(models: int) -> None:
    entrants = _entrants(models=models, replicates=1, total=50)
    values = {e.run_id: float(e.run_id) for e in entrants}
    decisions = _play([e.run_id for e in entrants], entrants, values)
    for rung, group in itertools.groupby(sorted(decisions, key=lambda d: d[1]), key=lambda d: d[1]):
        assert any(kept for _, _, kept in group), rung
