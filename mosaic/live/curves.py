"""Loss curves in bounded memory: at most :data:`POINTS` points a curve, whatever the epochs.

A curve of ``epochs`` planned epochs is sampled every :func:`stride` epochs, counted back from
the last one (so the last epoch is always a point): with 100 epochs and 24 points, epochs 4,
8, ..., 100. :class:`BandCurve` keeps, per point, the count, mean and spread of the values of a
model's replicates at that epoch (Welford's update: no cancellation), train and test;
:class:`RunCurve` one run's values at those epochs. Both live in one ``array('f')`` each.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator

#: the most points a curve keeps
POINTS = 24
_NAN = float("nan")


def stride(epochs: int) -> int:
    """Epochs between two points of a curve of ``epochs`` planned epochs."""
    return max(1, -(-max(1, int(epochs)) // POINTS))


def slot(epoch: int, epochs: int) -> int | None:
    """The point of ``epoch`` on the curve of ``epochs`` planned epochs (None: not sampled)."""
    step = stride(epochs)
    if epoch < 1 or epoch > epochs or (epochs - epoch) % step:
        return None
    return (epoch - 1) // step


def epoch_of(index: int, epochs: int) -> int:
    """The epoch of point ``index`` on the curve of ``epochs`` planned epochs."""
    step = stride(epochs)
    first = (epochs - 1) % step + 1
    return first + index * step


def size(epochs: int) -> int:
    """How many points the curve of ``epochs`` planned epochs has."""
    return (max(1, int(epochs)) - 1) // stride(epochs) + 1


class BandCurve:
    """Mean and standard deviation over replicates at each point, of train and test loss."""

    __slots__ = ("data", "epochs")
    _FIELDS = 5  # count, train mean, train M2, test mean, test M2

    def __init__(self, epochs: int) -> None:
        self.epochs = max(1, int(epochs))
        self.data = array("f", bytes(4 * self._FIELDS * size(self.epochs)))

    def add(self, epoch: int, train: float | None, test: float | None) -> None:
        """Count one replicate's values at ``epoch`` (nothing when the epoch is not a point)."""
        index = slot(epoch, self.epochs)
        if index is None or train is None or test is None or not (math.isfinite(train) and math.isfinite(test)):
            return
        base = index * self._FIELDS
        data = self.data
        n = data[base] + 1
        data[base] = n
        for offset, value in ((1, train), (3, test)):
            mean = data[base + offset]
            delta = value - mean
            mean += delta / n
            data[base + offset] = mean
            data[base + offset + 1] += delta * (value - mean)

    def load(self, index: int, n: int, train_mean: float, train_var: float, test_mean: float, test_var: float) -> None:
        """Set point ``index`` from aggregates computed elsewhere (population variances)."""
        base = index * self._FIELDS
        self.data[base:base + self._FIELDS] = array("f", [n, train_mean, train_var * n, test_mean, test_var * n])

    def points(self) -> Iterator[tuple[int, int, float, float, float, float]]:
        """``(epoch, n, train mean, train std, test mean, test std)`` of every point with values."""
        data = self.data
        for index in range(len(data) // self._FIELDS):
            base = index * self._FIELDS
            n = int(data[base])
            if n:
                yield (epoch_of(index, self.epochs), n, data[base + 1], math.sqrt(max(0.0, data[base + 2] / n)),
                       data[base + 3], math.sqrt(max(0.0, data[base + 4] / n)))


class RunCurve:
    """One run's train and test loss at the points of its curve."""

    __slots__ = ("data", "epochs")

    def __init__(self, epochs: int) -> None:
        self.epochs = max(1, int(epochs))
        self.data = array("f", [_NAN]) * (2 * size(self.epochs))

    def add(self, epoch: int, train: float | None, test: float | None) -> None:
        """Keep the run's values at ``epoch`` (when it is a point)."""
        index = slot(epoch, self.epochs)
        if index is not None:
            self.data[2 * index] = _NAN if train is None else train
            self.data[2 * index + 1] = _NAN if test is None else test

    def points(self) -> Iterator[tuple[int, float | None, float | None]]:
        """``(epoch, train, test)`` of every point the run reached."""
        data = self.data
        for index in range(len(data) // 2):
            train, test = data[2 * index], data[2 * index + 1]
            if not (math.isnan(train) and math.isnan(test)):
                yield (epoch_of(index, self.epochs), None if math.isnan(train) else train,
                       None if math.isnan(test) else test)
