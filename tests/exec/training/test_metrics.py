"""The summary metrics (DESIGN §6), checked on hand-computed histories and the original's runs."""

from __future__ import annotations

import pytest
import torch

from mosaic.exec.training import metrics
from tests.helpers import DATA

#: the history files of legacy_sample.db's runs
LEGACY_RUNS = DATA / "classes_worker" / "legacy_runs"

# run_results of legacy_sample.db (written by the original tool): run -> (overfit, trainability, slope)
LEGACY_RESULTS = {
    1: (1.0, 0.298058923706412, -0.000305709196254611),
    2: (1.0, 0.267799752578139, -0.000843779882416129),
    3: (1.0, 0.289691232889891, -0.000295708887279034),
    4: (0.998363448527463, 0.284883812442422, -0.00041581504046917),
    5: (0.967161791951016, 0.30103909149766, -0.000952412141487002),
    6: (0.985529957927539, 0.283961980417371, -0.000666607986204326),
}


@pytest.mark.parametrize("run_id", sorted(LEGACY_RESULTS))
def test_matches_the_original_tool(run_id: int) -> None:
    history = torch.load(LEGACY_RUNS / f"history_{run_id}.pt")
    got = metrics.summary(history["train_loss"], history["test_loss"])
    overfit, trainability, slope = LEGACY_RESULTS[run_id]
    assert got["overfit"] == pytest.approx(overfit, rel=1e-12)
    assert got["trainability"] == pytest.approx(trainability, rel=1e-12)
    assert got["slope"] == pytest.approx(slope, rel=1e-12)
    # 10 epochs: k = 1, one gradient, so both spreads are 0
    assert got["slope_std_plus"] == 0.0
    assert got["slope_std_minus"] == 0.0


def test_short_history_uses_the_last_gradient() -> None:
    train = [1.0, 0.5, 0.25, 0.125]
    test = [1.2, 0.8, 0.6, 0.5]
    got = metrics.summary(train, test)
    assert got["overfit"] == pytest.approx(0.375 / 1.075)
    assert got["trainability"] == pytest.approx(0.775)
    assert got["slope"] == pytest.approx(-0.125)
    assert got["slope_std_plus"] == 0.0
    assert got["slope_std_minus"] == 0.0


def test_last_tenth_of_a_long_history() -> None:
    # n = 40 -> k = 4; the last four gradients are -0.4, -0.2, 0.0, +0.2 (mean -0.1)
    train = [5.0] * 36 + [4.6, 4.4, 4.4, 4.6]
    test = [1.0] * 40
    got = metrics.summary(train, test)
    assert got["slope"] == pytest.approx(-0.1)
    assert got["slope_std_plus"] == pytest.approx(0.1)  # std of [0.0, 0.2]
    assert got["slope_std_minus"] == pytest.approx(0.1)  # std of [-0.4, -0.2]
    assert got["overfit"] == pytest.approx(3.6 / 4.0)
    assert got["trainability"] == pytest.approx(1.0)


def test_k_rounds_down() -> None:
    # n = 19 -> k = 1: only the very last gradient counts
    train = [float(i) for i in range(18)] + [100.0]
    slope, plus, minus = metrics.slope(train)
    assert slope == pytest.approx(100.0 - 17.0)
    assert (plus, minus) == (0.0, 0.0)


def test_single_epoch() -> None:
    got = metrics.summary([0.5], [0.3])
    assert got["overfit"] == pytest.approx(1.0)
    assert got["trainability"] == pytest.approx(0.3)
    assert got["slope"] is None
    assert got["slope_std_plus"] is None
    assert got["slope_std_minus"] is None


def test_flat_history() -> None:
    got = metrics.summary([0.1] * 25, [0.1] * 25)
    assert got["overfit"] is None  # range is 0
    assert got["trainability"] == pytest.approx(0.1)
    assert got["slope"] == 0.0
    assert got["slope_std_plus"] == 0.0
    assert got["slope_std_minus"] == 0.0


def test_flat_tail_with_rounding_keeps_spreads_defined() -> None:
    # the mean of three equal gradients can round above them; they still count on both sides
    train = [1.0] * 27 + [1.1, 1.2, 1.3]  # n = 30, k = 3, gradients all ~0.1
    slope, plus, minus = metrics.slope(train)
    assert slope == pytest.approx(0.1)
    assert plus == pytest.approx(0.0, abs=1e-12)
    assert minus == pytest.approx(0.0, abs=1e-12)


def test_empty_history() -> None:
    assert metrics.summary([], []) == dict.fromkeys(metrics.METRIC_NAMES)


def test_plain_python_floats() -> None:
    got = metrics.summary([0.3, 0.2, 0.1], [0.4, 0.3, 0.35])
    assert all(type(v) is float for v in got.values())
    assert list(got) == list(metrics.METRIC_NAMES)
