"""The verdict: which model is best on each dataset, and how sure that is (numbers only).

:func:`verdict_table` takes one row per done run (``dataset, model, value``) and gives, per
dataset, one row per model: replicates, mean, a bootstrap interval of the mean, rank, a
permutation test against the best model (Holm-corrected within the dataset), the
bootstrap probability of beating the best, and a verdict (:data:`VERDICTS`).
:func:`across_datasets` ranks the models over several datasets (average ranks, Friedman
test, Nemenyi critical difference; Demšar 2006).

Everything is vectorised over groups: the runs of one (dataset, model) are a group, and all
groups of one size share one set of resamples (bootstrap counts, permutation splits),
drawn from a generator seeded by ``(seed, size)``. Each group's resampling is still
independent of its data, so every interval and p-value is valid on its own; a model's
numbers do not change when other models are added. Same input and seed: the same table,
bit for bit (inputs are sorted first).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mosaic.errors import UsageError

#: the verdicts, from the strongest claim to none
VERDICTS = ("best", "tied", "worse", "inconclusive")
#: the fewest replicates of a model for any claim about it
MIN_REPLICATES = 3
#: resamples of the bootstrap and random permutation splits
RESAMPLES = 2000
_CHUNK = 1024  # groups resampled at once
COLUMNS = ["dataset", "model", "n", "mean", "ci_low", "ci_high", "rank", "p_vs_best",
           "prob_better_than_best", "diff_low", "diff_high", "verdict", "to_add", "note"]
ACROSS_COLUMNS = ["model", "datasets", "mean_rank", "rank", "rank_gap", "critical_difference",
                  "friedman_p", "verdict"]


@dataclass(frozen=True)
class _Groups:
    """The runs sorted by (dataset, model, value), and where each group starts."""

    datasets: np.ndarray  # per group
    models: np.ndarray  # per group
    sizes: np.ndarray  # per group
    starts: np.ndarray  # per group, into values
    values: np.ndarray

    def matrix(self, members: np.ndarray, size: int) -> np.ndarray:
        """The values of groups ``members`` (all of ``size`` runs) as a (groups, size) array."""
        return self.values[self.starts[members][:, None] + np.arange(size)]


def _groups(frame: pd.DataFrame) -> _Groups:
    data = frame[["dataset", "model", "value"]].astype({"dataset": str, "model": str, "value": float})
    data = data.sort_values(["dataset", "model", "value"], kind="mergesort").reset_index(drop=True)
    keys = data["dataset"] + "\x00" + data["model"]
    first = np.flatnonzero(np.r_[True, keys.to_numpy()[1:] != keys.to_numpy()[:-1]]) if len(data) else np.array([], int)
    sizes = np.diff(np.r_[first, len(data)]).astype(np.int64)
    return _Groups(data["dataset"].to_numpy()[first], data["model"].to_numpy()[first], sizes, first,
                   data["value"].to_numpy(dtype=float))


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *salt])


def _bootstrap_means(groups: _Groups, members: np.ndarray, size: int, seed: int, resamples: int) -> np.ndarray:
    """(groups, resamples) bootstrap means: one set of multinomial counts for every group of ``size``."""
    counts = _rng(seed, 0, size).multinomial(size, np.full(size, 1.0 / size), size=resamples)
    return groups.matrix(members, size) @ counts.T.astype(float) / size


def _split_matrix(n1: int, n2: int, seed: int, resamples: int) -> tuple[np.ndarray, bool]:
    """Indicator rows of the first sample in permutation splits of n1 + n2 values, and whether
    they are every split (exact) rather than ``resamples`` random ones."""
    total = n1 + n2
    if math.comb(total, n1) <= resamples:
        combos = np.array(list(itertools.combinations(range(total), n1)), dtype=np.int64)
        exact = True
    else:
        keys = _rng(seed, 1, n1, n2).random((resamples, total))
        combos = np.argsort(keys, axis=1, kind="stable")[:, :n1]
        exact = False
    matrix = np.zeros((len(combos), total))
    np.put_along_axis(matrix, combos, 1.0, axis=1)
    return matrix, exact


def min_p_value(n1: int, n2: int) -> float:
    """The smallest two-sided p-value the permutation test gives samples of n1 and n2: both
    most extreme splits out of C(n1 + n2, n1)."""
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def _permutation_p(model: np.ndarray, best: np.ndarray, seed: int, resamples: int) -> np.ndarray:
    """Two-sided permutation p-values of the difference of means, row by row: model (g, n1)
    against best (g, n2). Exact when every split fits in ``resamples``; otherwise Monte
    Carlo, and a p below its resolution (no random split as extreme) is refined by the
    permutation distribution's normal approximation, never below :func:`min_p_value`."""
    n1, n2 = model.shape[1], best.shape[1]
    splits, exact = _split_matrix(n1, n2, seed, resamples)
    pooled = np.concatenate([model, best], axis=1)
    total = pooled.sum(axis=1, keepdims=True)
    scale = 1.0 / n1 + 1.0 / n2
    observed = np.abs(model.sum(axis=1, keepdims=True) * scale - total / n2)
    permuted = np.abs((pooled @ splits.T) * scale - total / n2)
    spread = np.abs(pooled).max(axis=1, keepdims=True)
    extreme = (permuted >= observed - 1e-9 * (spread + 1e-300)).sum(axis=1)
    if exact:
        return extreme / len(splits)
    p = (extreme + 1.0) / (len(splits) + 1.0)
    unseen = extreme == 0
    if unseen.any():
        count = n1 + n2
        sd = np.sqrt(pooled[unseen].var(axis=1) * count * count / (n1 * n2 * (count - 1)))
        with np.errstate(divide="ignore", invalid="ignore"):
            normal = 2.0 * stats.norm.sf(observed[unseen, 0] / sd)
        p[unseen] = np.clip(np.nan_to_num(normal, nan=1.0), min_p_value(n1, n2), p[unseen])
    return p


def _holm(frame: pd.DataFrame) -> pd.Series:
    """Holm-adjusted ``p`` within each ``dataset`` (NaN stays NaN and does not count)."""
    tested = frame.dropna(subset=["p"]).sort_values(["dataset", "p"], kind="mergesort")
    position = tested.groupby("dataset", sort=False).cumcount()
    count = tested.groupby("dataset", sort=False)["p"].transform("size")
    adjusted = (tested["p"] * (count - position)).clip(upper=1.0)
    adjusted = adjusted.groupby(tested["dataset"], sort=False).cummax()
    return adjusted.reindex(frame.index)


def verdict_table(
    frame: pd.DataFrame,
    metric: str,
    higher_is_better: bool,
    level: float = 0.95,
    rope: float | None = None,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> pd.DataFrame:
    """Per dataset, one row per model (:data:`COLUMNS`), from one row per done run
    (``dataset, model, value``; non-finite values must be left out before).

    ``mean`` and its ``ci_low``/``ci_high`` (percentile bootstrap of the mean over
    replicates at ``level``); ``rank`` (1 = best mean, ties share the lower rank); the best
    is the first-ranked model with at least :data:`MIN_REPLICATES` replicates;
    ``p_vs_best`` a two-sided permutation test of the difference of means against it
    (exact when the splits are few), Holm-corrected within the dataset;
    ``prob_better_than_best`` the bootstrap probability that this model's mean beats the
    best's; ``diff_low``/``diff_high`` the bootstrap interval of mean - best mean.
    ``verdict``: ``best``; ``tied`` (p_vs_best >= 1 - level; with ``rope``: the interval of
    the difference lies within ±rope); ``worse`` (p_vs_best < 1 - level, and with ``rope``
    the difference leaves ±rope); ``inconclusive`` (too few replicates for the test to
    reach 1 - level, or with ``rope`` neither); ``to_add`` how many replicates this model
    needs before the test can decide; ``note`` says why, in a few words.
    ``metric`` only names the values in notes.
    """
    _check(level, rope, resamples)
    groups = _groups(frame)
    table = pd.DataFrame({"dataset": groups.datasets, "model": groups.models, "n": groups.sizes})
    sums = np.add.reduceat(groups.values, groups.starts) if len(groups.values) else np.array([])
    table["mean"] = sums / np.maximum(groups.sizes, 1)
    sign = -1.0 if higher_is_better else 1.0
    table["_score"] = sign * table["mean"]
    table["rank"] = table.groupby("dataset")["_score"].rank(method="min").astype("int64")
    eligible = table[table["n"] >= MIN_REPLICATES].sort_values(["dataset", "_score", "model"], kind="mergesort")
    firsts = eligible.drop_duplicates("dataset")
    reference = pd.Series(firsts.index.to_numpy(), index=firsts["dataset"].to_numpy())  # dataset -> its best's row
    table["_best"] = table["dataset"].map(reference).fillna(-1).astype("int64")
    _resample(table, groups, sign, level, seed, resamples)
    table["p_vs_best"] = _holm(table.assign(p=table["_p"]))
    _verdicts(table, metric, level, rope)
    ordered = table.sort_values(["dataset", "rank", "model"], kind="mergesort").reset_index(drop=True)
    return ordered[COLUMNS]


def _check(level: float, rope: float | None, resamples: int) -> None:
    if not 0.5 <= level < 1.0:
        raise UsageError(f"--level {level}: give a confidence level between 0.5 and 1, e.g. 0.95")
    if rope is not None and not (math.isfinite(rope) and rope > 0):
        raise UsageError(f"--rope {rope}: give a positive width of practical equivalence, in the metric's units")
    if resamples < 100:
        raise UsageError(f"resamples {resamples}: use at least 100 (default {RESAMPLES})")


def _resample(table: pd.DataFrame, groups: _Groups, sign: float, level: float, seed: int, resamples: int) -> None:
    """The bootstrap and permutation columns of ``table`` (one row per group), in place."""
    count = len(table)
    out = {name: np.full(count, np.nan) for name in ("ci_low", "ci_high", "diff_low", "diff_high", "prob", "p")}
    refs = table["_best"].to_numpy()
    best_rows = np.unique(refs[refs >= 0])
    best_boot: dict[int, np.ndarray] = {}
    for size in np.unique(groups.sizes[best_rows]):
        members = best_rows[groups.sizes[best_rows] == size]
        # paired with the next resample (a shift): independent of a model sharing the counts
        boots = np.roll(_bootstrap_means(groups, members, int(size), seed, resamples), 1, axis=1)
        best_boot.update(zip(members.tolist(), boots, strict=True))
    for size in np.unique(groups.sizes):
        members = np.flatnonzero(groups.sizes == size)
        for chunk in np.array_split(members, -(-len(members) // _CHUNK)):
            _resample_chunk(out, groups, chunk, int(size), refs[chunk], best_boot, sign, level, seed, resamples)
    table["ci_low"], table["ci_high"] = out["ci_low"], out["ci_high"]
    table["diff_low"], table["diff_high"] = out["diff_low"], out["diff_high"]
    table["prob_better_than_best"] = out["prob"]
    table["_p"] = out["p"]


def _resample_chunk(out: dict[str, np.ndarray], groups: _Groups, members: np.ndarray, size: int, refs: np.ndarray,
                    best_boot: dict[int, np.ndarray], sign: float, level: float, seed: int, resamples: int) -> None:
    """:func:`_resample` for some groups of one size (a chunk bounds the memory used)."""
    quantiles = [(1.0 - level) / 2, (1.0 + level) / 2]
    boots = _bootstrap_means(groups, members, size, seed, resamples)
    out["ci_low"][members], out["ci_high"][members] = np.quantile(boots, quantiles, axis=1)
    has = (refs >= 0) & (refs != members)
    if not has.any():
        return
    rows, refs = members[has], refs[has]
    delta = boots[has] - np.stack([best_boot[int(r)] for r in refs])
    out["diff_low"][rows], out["diff_high"][rows] = np.quantile(delta, quantiles, axis=1)
    out["prob"][rows] = (sign * delta < 0).mean(axis=1) + (delta == 0).mean(axis=1) / 2
    for best_size in np.unique(groups.sizes[refs]):
        pick = groups.sizes[refs] == best_size
        out["p"][rows[pick]] = _permutation_p(groups.matrix(rows[pick], size),
                                              groups.matrix(refs[pick], int(best_size)), seed, resamples)


def replicates_to_add(n: int, best_n: int, level: float, compared: int = 1) -> int:
    """How many replicates a model of ``n`` needs (against a best of ``best_n``, among
    ``compared`` models tested against the best) before the Holm-corrected permutation test
    can reach p < 1 - level; at least :data:`MIN_REPLICATES` in all."""
    add = max(0, MIN_REPLICATES - n)
    while min_p_value(n + add, best_n) * max(compared, 1) >= 1.0 - level and add < 10_000:
        add += 1
    return add


def _verdicts(table: pd.DataFrame, metric: str, level: float, rope: float | None) -> None:
    """The ``verdict``, ``to_add`` and ``note`` columns, in place."""
    alpha = 1.0 - level
    refs = table["_best"].to_numpy()
    sizes = table["n"].to_numpy()
    best_n = np.where(refs >= 0, sizes[np.maximum(refs, 0)], 0)
    compared = (table[refs >= 0].groupby("dataset").size() - 1).to_dict()  # models tested per dataset
    needed: dict[tuple[int, int, int], int] = {}
    verdicts, adds, notes = [], [], []
    for row, (dataset, n, bn, ref, p, low, high) in enumerate(zip(
            table["dataset"].tolist(), sizes.tolist(), best_n.tolist(), refs.tolist(), table["p_vs_best"].tolist(),
            table["diff_low"].tolist(), table["diff_high"].tolist(), strict=True)):
        add = 0
        if ref == row:
            verdict, note = "best", f"best mean {metric}"
        elif ref < 0:
            add = MIN_REPLICATES - n
            verdict, note = "inconclusive", f"no model here has {MIN_REPLICATES} replicates: add {add}"
        elif add := needed.setdefault((n, bn, compared[dataset]), replicates_to_add(n, bn, level, compared[dataset])):
            verdict, note = "inconclusive", f"{n} vs the best's {bn} replicates: too few to decide; add {add}"
        elif rope is not None and -rope <= low and high <= rope:
            verdict, note = "tied", f"equivalent within ±{rope:g}"
        elif p < alpha:
            verdict, note = "worse", f"p < {alpha:g}"
        elif rope is None:
            verdict, note = "tied", f"p >= {alpha:g}: not distinguishable"
        else:
            verdict, note = "inconclusive", f"neither different nor within ±{rope:g}: add replicates"
        verdicts.append(verdict)
        adds.append(add)
        notes.append(note)
    table["verdict"] = verdicts
    table["to_add"] = np.asarray(adds, dtype=np.int64)
    table["note"] = notes


def across_datasets(table: pd.DataFrame, higher_is_better: bool, level: float = 0.95) -> pd.DataFrame | None:
    """Rank the models over datasets (:data:`ACROSS_COLUMNS`), or None with fewer than 2
    datasets or 2 models that every dataset has.

    Only models present in every dataset count (a complete block design). Per dataset the
    models are ranked by mean (1 = best, ties averaged); ``mean_rank`` averages those;
    ``friedman_p`` is the Friedman test that all mean ranks are equal; ``critical_difference``
    Nemenyi's (Demšar 2006: q_alpha * sqrt(k(k+1)/(6N)), q_alpha the studentized range at
    ``level`` over sqrt 2). ``verdict``: ``best`` (lowest mean rank), ``tied`` (within the
    critical difference of it, or the Friedman test does not reject), ``worse``.
    """
    datasets = table["dataset"].unique()
    if len(datasets) < 2:
        return None
    present = table.groupby("model")["dataset"].nunique()
    common = sorted(present.index[present == len(datasets)])
    if len(common) < 2:
        return None
    means = table[table["model"].isin(common)].pivot(index="dataset", columns="model", values="mean")[common]
    scores = -means.to_numpy() if higher_is_better else means.to_numpy()
    ranks = stats.rankdata(scores, axis=1)
    count, k = ranks.shape
    mean_rank = ranks.mean(axis=0)
    friedman_p = _friedman_p(ranks)
    q_alpha = float(stats.studentized_range.ppf(level, k, np.inf)) / math.sqrt(2)
    cd = q_alpha * math.sqrt(k * (k + 1) / (6.0 * count))
    out = pd.DataFrame({"model": common, "datasets": count, "mean_rank": mean_rank})
    out["rank"] = out["mean_rank"].rank(method="min").astype("int64")
    gap = out["mean_rank"] - out["mean_rank"].min()
    out["rank_gap"] = gap
    out["critical_difference"] = cd
    out["friedman_p"] = friedman_p
    best = out.sort_values(["mean_rank", "model"], kind="mergesort").index[0]
    differs = friedman_p < 1.0 - level
    out["verdict"] = np.where(out.index == best, "best", np.where(differs & (gap > cd), "worse", "tied"))
    return out.sort_values(["mean_rank", "model"], kind="mergesort").reset_index(drop=True)[ACROSS_COLUMNS]


def _friedman_p(ranks: np.ndarray) -> float:
    """The Friedman test's p-value on ranks (blocks x treatments); scipy's for 3+ treatments."""
    count, k = ranks.shape
    if k >= 3:
        return float(stats.friedmanchisquare(*ranks.T).pvalue)
    # two treatments: the same statistic (with scipy's tie correction), one degree of freedom
    statistic = 12.0 / (count * k * (k + 1)) * float((ranks.sum(axis=0) ** 2).sum()) - 3.0 * count * (k + 1)
    ties = sum(float((c ** 3 - c).sum()) for c in (np.unique(r, return_counts=True)[1] for r in ranks))
    correction = 1.0 - ties / (count * k * (k * k - 1))
    return float(stats.chi2.sf(statistic / correction, k - 1)) if correction > 0 else 1.0
