"""Curves in bounded memory (mosaic.live.curves): the points sampled, the band's numbers."""

from __future__ import annotations

import math
import statistics

from mosaic.live.curves import POINTS, BandCurve, RunCurve, epoch_of, size, slot, stride


def test_a_curve_has_at_most_POINTS_points_and_always_its_last_epoch() -> None:
    for epochs in (1, 2, 10, POINTS, POINTS + 1, 100, 1001, 100_000):
        points = [epoch_of(i, epochs) for i in range(size(epochs))]
        assert len(points) <= POINTS and points[-1] == epochs
        assert all(slot(e, epochs) == i for i, e in enumerate(points))
        assert points == sorted(set(points)) and points[0] >= 1
        assert [e for e in range(1, epochs + 1) if slot(e, epochs) is not None][:5] == points[:5]
    assert stride(10) == 1 and [epoch_of(i, 100) for i in (0, 1, 19)] == [5, 10, 100]
    assert slot(0, 10) is None and slot(11, 10) is None and slot(7, 100) is None


def test_the_band_is_the_mean_and_standard_deviation_over_replicates() -> None:
    band = BandCurve(3)
    replicates = [[1.0, 0.5, 0.25], [3.0, 1.5, 0.75], [2.0, 1.0, 0.5]]
    for losses in replicates:
        for epoch, loss in enumerate(losses, start=1):
            band.add(epoch, loss, loss + 1)
    band.add(2, None, 1.0)  # a missing value counts nowhere
    band.add(2, math.nan, 1.0)
    points = list(band.points())
    assert [p[:2] for p in points] == [(1, 3), (2, 3), (3, 3)]
    for (_, _, train, train_sd, test, test_sd), values in zip(points, zip(*replicates, strict=True), strict=True):
        assert math.isclose(train, statistics.mean(values), rel_tol=1e-6)
        assert math.isclose(train_sd, statistics.pstdev(values), rel_tol=1e-5)
        assert math.isclose(test, statistics.mean(values) + 1, rel_tol=1e-6) and math.isclose(test_sd, train_sd, rel_tol=1e-4)


def test_a_run_curve_keeps_its_sampled_epochs_only() -> None:
    run = RunCurve(100)
    for epoch in range(1, 43):
        run.add(epoch, 1.0 / epoch, None if epoch == 40 else 2.0 / epoch)
    points = list(run.points())
    assert [p[0] for p in points] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert points[-1][2] is None and math.isclose(points[-1][1], 1 / 40, rel_tol=1e-6)
    assert len(run.data) == 2 * size(100) == 40  # 20 points of 100 epochs, two values each, whatever was trained
