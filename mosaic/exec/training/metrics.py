"""Summary metrics of a loss history: the original tool's definitions (DESIGN §6).

Pure numpy, no torch. With ``train`` and ``test`` the per-epoch losses (length ``n``) and
``k = max(1, n // 10)``:

- ``overfit = |test[-1] - train[-1]| / (max(train + test) - min(train + test))``,
  ``None`` when that range is 0;
- ``trainability = mean(test)``;
- ``grad = diff(train)[-k:]``, ``slope = mean(grad)``,
  ``slope_std_plus = std(grad[grad >= slope])``, ``slope_std_minus = std(grad[grad <= slope])``,
  all three ``None`` when ``n < 2``.

Every function returns plain Python floats (or ``None``), ready for a Parquet row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

METRIC_NAMES = ("overfit", "trainability", "slope", "slope_std_plus", "slope_std_minus")


def _array(values: Sequence[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=np.float64)


def _plain(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def overfit(train: Sequence[float], test: Sequence[float]) -> float | None:
    """Last-epoch gap between test and train loss, relative to the whole loss range."""
    train_a, test_a = _array(train), _array(test)
    if train_a.size == 0 or test_a.size == 0:
        return None
    both = np.concatenate([train_a, test_a])
    spread = float(both.max() - both.min())
    if spread == 0 or not math.isfinite(spread):
        return None
    return _plain(abs(test_a[-1] - train_a[-1]) / spread)


def trainability(test: Sequence[float]) -> float | None:
    """Mean test loss over all epochs."""
    test_a = _array(test)
    if test_a.size == 0:
        return None
    return _plain(test_a.mean())


def slope(train: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """``(slope, slope_std_plus, slope_std_minus)`` of the last tenth of the train loss curve."""
    train_a = _array(train)
    n = train_a.size
    if n < 2:
        return None, None, None
    k = max(1, n // 10)
    grad = np.diff(train_a)[-k:]
    mean = grad.mean()
    # A flat tail's mean can round a hair above its values; count those as equal to it.
    close = np.isclose(grad, mean, rtol=1e-12, atol=0.0)
    upper = grad[(grad >= mean) | close]
    lower = grad[(grad <= mean) | close]
    return _plain(mean), _plain(upper.std()), _plain(lower.std())


def summary(train: Sequence[float], test: Sequence[float]) -> dict[str, float | None]:
    """All five metrics as a dict keyed by :data:`METRIC_NAMES`."""
    slope_, plus, minus = slope(train)
    return {
        "overfit": overfit(train, test),
        "trainability": trainability(test),
        "slope": slope_,
        "slope_std_plus": plus,
        "slope_std_minus": minus,
    }
