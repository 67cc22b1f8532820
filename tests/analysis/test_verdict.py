"""The verdict's statistics on data whose truth is known (:mod:`mosaic.analysis.verdict`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mosaic.analysis import verdict
from mosaic.errors import UsageError


def _frame(groups: dict[tuple[str, str], np.ndarray | list[float]]) -> pd.DataFrame:
    rows = [(d, m, float(v)) for (d, m), values in groups.items() for v in values]
    return pd.DataFrame(rows, columns=["dataset", "model", "value"])


def _same_distribution(reps: int, n: int, seed: int) -> pd.DataFrame:
    """``reps`` datasets, each with models a and b of ``n`` replicates from one normal law."""
    rng = np.random.default_rng(seed)
    return _frame({(f"d{r:04d}", m): rng.normal(0.0, 1.0, n) for r in range(reps) for m in ("a", "b")})


def test_a_model_better_by_a_known_margin_is_best_and_the_other_worse() -> None:
    rng = np.random.default_rng(7)
    frame = _frame({("OR", "good"): rng.normal(0.10, 0.02, 6), ("OR", "bad"): rng.normal(0.20, 0.02, 6)})
    table = verdict.verdict_table(frame, "test_loss", higher_is_better=False).set_index("model")
    assert table.loc["good", ["rank", "verdict"]].tolist() == [1, "best"]
    assert table.loc["bad", ["rank", "verdict"]].tolist() == [2, "worse"]
    assert table.loc["bad", "p_vs_best"] == pytest.approx(2 / math.comb(12, 6))  # every split enumerated
    assert table.loc["bad", "prob_better_than_best"] == 0.0
    assert 0.05 < table.loc["bad", "diff_low"] < table.loc["bad", "diff_high"] < 0.15
    # an accuracy: higher is better, so the same numbers crown the other model
    flipped = verdict.verdict_table(frame, "test_acc", higher_is_better=True).set_index("model")
    assert flipped.loc["bad", "verdict"] == "best" and flipped.loc["good", "verdict"] == "worse"


def test_two_models_of_one_distribution_are_tied_in_95_percent_of_repetitions() -> None:
    # 200 repetitions of the test's own RNG, one dataset each (4 replicates: an exact test)
    table = verdict.verdict_table(_same_distribution(200, 4, seed=11), "loss", higher_is_better=False, resamples=100)
    others = table[table["verdict"] != "best"]
    assert len(others) == 200
    assert (others["verdict"] == "tied").mean() >= 0.95


@pytest.mark.parametrize(("n", "resamples"), [(5, 300), (8, 200)])
def test_the_test_holds_its_level_exact_and_monte_carlo(n: int, resamples: int) -> None:
    # 5 replicates: all 252 splits (exact); 8: 200 random splits. Rejections of a true null:
    # at most 5 %, give or take three binomial standard deviations over 1,500 repetitions
    table = verdict.verdict_table(_same_distribution(1500, n, seed=n), "loss", False, resamples=resamples)
    worse = (table.loc[table["verdict"] != "best", "verdict"] == "worse").mean()
    assert worse <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 1500)


def test_too_few_replicates_are_inconclusive_and_say_how_many_to_add() -> None:
    rng = np.random.default_rng(3)
    frame = _frame({("OR", "best"): rng.normal(0, 0.01, 5), ("OR", "pair"): [0.5, 0.6],
                    ("AND", "best"): rng.normal(0, 0.01, 5), ("AND", "three"): [0.3, 0.31, 0.32],
                    ("AND", "other"): rng.normal(1, 0.01, 5), ("XOR", "a"): [1.0, 2.0], ("XOR", "b"): [3.0]})
    table = verdict.verdict_table(frame, "test_loss", False).set_index(["dataset", "model"])
    assert table.loc[("OR", "pair"), "verdict"] == "inconclusive"
    assert table.loc[("OR", "pair"), "to_add"] == 1  # 3 against 5: p can reach 2/56
    assert table.loc[("OR", "pair"), "note"] == "2 vs the best's 5 replicates: too few to decide; add 1"
    # 3 against 5 with two models tested (Holm): 2 x 2/56 > 0.05, so one more is needed
    assert table.loc[("AND", "three"), "verdict"] == "inconclusive"
    assert table.loc[("AND", "three"), "to_add"] == 1
    assert table.loc[("AND", "other"), "verdict"] == "worse"
    # no model with 3 replicates: no best, every model inconclusive
    assert table.loc["XOR", "verdict"].tolist() == ["inconclusive"] * 2
    assert table.loc["XOR", "to_add"].tolist() == [1, 2] and "add 2" in table.loc[("XOR", "b"), "note"]
    assert verdict.replicates_to_add(3, 3, 0.95) == 2  # 3 vs 3: the smallest p is 2/20; 5 vs 3: 2/56


def test_the_interval_matches_scipy_bootstrap() -> None:
    values = np.random.default_rng(5).gamma(2.0, 1.0, 15)
    table = verdict.verdict_table(_frame({("d", "m"): values}), "m", False, level=0.9, resamples=50_000)
    ours = table.loc[0, ["ci_low", "ci_high"]].to_numpy(dtype=float)
    theirs = stats.bootstrap((values,), np.mean, confidence_level=0.9, method="percentile", n_resamples=50_000,
                             random_state=np.random.default_rng(0)).confidence_interval
    width = theirs.high - theirs.low
    assert ours == pytest.approx([theirs.low, theirs.high], abs=0.02 * width)
    assert table.loc[0, "mean"] == pytest.approx(values.mean())


def test_the_p_value_matches_scipy_permutation_test() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.normal(0, 1, 5), rng.normal(1.2, 1, 6)
    table = verdict.verdict_table(_frame({("d", "a"): a, ("d", "b"): b}), "m", False, resamples=1000)
    # two-sided as |difference of means| at least the observed one, over every split
    exact = stats.permutation_test((a, b), lambda x, y: abs(np.mean(x) - np.mean(y)), permutation_type="independent",
                                   n_resamples=np.inf, alternative="greater").pvalue
    assert table["p_vs_best"].dropna().item() == pytest.approx(exact)


def test_the_same_input_and_seed_give_the_same_table_bit_for_bit() -> None:
    frame = _same_distribution(30, 9, seed=1)  # 9 vs 9: random splits
    first = verdict.verdict_table(frame, "loss", False, seed=4)
    again = verdict.verdict_table(frame.sample(frac=1.0, random_state=2), "loss", False, seed=4)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    other = verdict.verdict_table(frame, "loss", False, seed=5)
    assert not np.array_equal(first["ci_low"].to_numpy(), other["ci_low"].to_numpy())


def test_a_rope_calls_a_tiny_real_difference_practically_equivalent() -> None:
    rng = np.random.default_rng(2)
    frame = _frame({("d", "a"): rng.normal(1.0, 0.001, 12), ("d", "b"): rng.normal(1.003, 0.001, 12)})
    plain = verdict.verdict_table(frame, "loss", False).set_index("model")
    assert plain.loc["b", "verdict"] == "worse"
    roped = verdict.verdict_table(frame, "loss", False, rope=0.01).set_index("model")
    assert roped.loc["b", "verdict"] == "tied" and roped.loc["b", "note"] == "equivalent within ±0.01"
    unsure = verdict.verdict_table(_frame({("d", "a"): [1.0, 1.5, 0.5], ("d", "b"): [1.1, 1.6, 0.4, 1.0, 1.2]}),
                                   "loss", False, rope=0.01)
    assert unsure.set_index("model")["verdict"].to_dict() == {"a": "best", "b": "inconclusive"}


def test_across_datasets_ranks_models_with_friedman_and_nemenyi() -> None:
    # six datasets, always a < b < c (lower is better), with dataset-specific offsets
    rng = np.random.default_rng(1)
    frame = _frame({(f"d{i}", m): rng.normal(i + shift, 0.01, 3) for i in range(6)
                    for m, shift in (("a", 0.0), ("b", 0.1), ("c", 0.2))})
    table = verdict.verdict_table(frame, "loss", False)
    across = verdict.across_datasets(table, higher_is_better=False).set_index("model")
    assert across["mean_rank"].tolist() == [1.0, 2.0, 3.0]
    assert across.loc["a", "friedman_p"] == pytest.approx(stats.friedmanchisquare([1] * 6, [2] * 6, [3] * 6).pvalue)
    cd = 2.343 * math.sqrt(3 * 4 / (6 * 6))  # Demšar 2006, table 5(a): q_0.05 for k = 3
    assert across.loc["a", "critical_difference"] == pytest.approx(cd, rel=1e-3)
    assert across["verdict"].to_dict() == {"a": "best", "b": "tied", "c": "worse"}  # gaps 1 < CD 1.35 < 2
    assert verdict.across_datasets(table[table["dataset"] == "d0"], False) is None  # one dataset


def test_two_models_across_datasets_and_bad_arguments() -> None:
    frame = _frame({(f"d{i}", m): [i + s, i + s + 0.01, i + s + 0.02] for i in range(8) for m, s in (("a", 0), ("b", 1))})
    across = verdict.across_datasets(verdict.verdict_table(frame, "loss", False), False).set_index("model")
    assert across.loc["b", "verdict"] == "worse" and across.loc["a", "friedman_p"] == pytest.approx(
        stats.chi2.sf(8.0, 1))  # all 8 blocks agree: chi2 = 12*8/(2*3) * (8^2 + 16^2) - 3*8*3 = 8
    with pytest.raises(UsageError, match="--level 1.5"):
        verdict.verdict_table(frame, "loss", False, level=1.5)
    with pytest.raises(UsageError, match="--rope -1"):
        verdict.verdict_table(frame, "loss", False, rope=-1)
