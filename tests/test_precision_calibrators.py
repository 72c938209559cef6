"""Calibrators on known distributions, and the streaming histogram they read."""

from __future__ import annotations

import numpy as np
import pytest

from rtdeploy.errors import PrecisionError
from rtdeploy.precision.calibrators import check_method
from rtdeploy.precision.int8.calibrators import (
    compute_threshold,
    compute_thresholds,
    entropy_threshold,
    mse_threshold,
    percentile_threshold,
)
from rtdeploy.precision.int8.histogram import AbsHistogram, AbsMax, TensorStats


def _stats(values: np.ndarray, bins: int = 2048, batches: int = 1) -> TensorStats:
    h = AbsHistogram(bins)
    for chunk in np.array_split(values.astype(np.float32), batches):
        h.update(chunk)
    return h.result()


def test_histogram_counts_every_value_exactly_across_range_growth():
    rng = np.random.default_rng(0)
    # Later batches exceed the first's range several times: the range must double, losing nothing.
    parts = [rng.uniform(-1, 1, 10_000), rng.uniform(-7, 7, 10_000), rng.uniform(-30, 30, 10_000)]
    h = AbsHistogram(2048)
    for p in parts:
        h.update(p.astype(np.float32))
    s = h.result()
    values = np.abs(np.concatenate(parts)).astype(np.float32)
    assert s.count == values.size == int(s.hist.sum())
    assert s.amax == pytest.approx(values.max())
    assert s.hist_range >= s.amax
    assert np.flatnonzero(s.hist)[-1] >= 1023, "at least half the bins cover [0, amax]"
    expected, _ = np.histogram(values, bins=2048, range=(0, s.hist_range))
    # Values on a bin edge may land one bin apart from numpy's float64 binning; totals match.
    assert np.abs(np.cumsum(expected) - np.cumsum(s.hist)).max() <= 3


def test_histogram_of_all_zero_batches_then_values():
    h = AbsHistogram(256)
    h.update(np.zeros(100, np.float32))
    h.update(np.array([0.5, -1.0], np.float32))
    s = h.result()
    assert s.count == 102 and s.hist[0] >= 100 and s.amax == 1.0


def test_absmax_tracks_the_largest_magnitude_of_either_sign():
    m = AbsMax()
    m.update(np.array([0.5, -3.0, 2.0], np.float32))
    m.update(np.array([1.0], np.float32))
    assert m.result().amax == 3.0 and m.result().count == 4


def test_max_threshold_is_the_maximum():
    values = np.random.default_rng(1).normal(0, 1, 50_000)
    s = _stats(values)
    assert compute_threshold(s, "max") == pytest.approx(np.abs(values).max(), rel=1e-6)


@pytest.mark.parametrize("p", [50.0, 90.0, 99.0])
def test_percentile_of_a_uniform_distribution(p):
    values = np.random.default_rng(2).uniform(-4, 4, 200_000)
    t = compute_threshold(_stats(values), "percentile", p)
    assert t == pytest.approx(4 * p / 100, rel=0.01)


def test_percentile_100_equals_max():
    values = np.random.default_rng(3).normal(0, 1, 10_000)
    s = _stats(values)
    assert compute_threshold(s, "percentile", 100.0) == pytest.approx(s.amax, rel=1e-3)


def _gaussian_with_outliers(seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 1, 200_000), rng.uniform(40, 50, 20) * rng.choice([-1, 1], 20)])


def test_entropy_clips_rare_outliers_of_a_gaussian():
    s = _stats(_gaussian_with_outliers(), batches=4)
    t = compute_threshold(s, "entropy")
    assert s.amax > 40
    assert 2.5 < t < 8, f"entropy should clip the 20 outliers but keep the Gaussian body, got {t}"


def test_mse_keeps_far_outliers_that_cost_more_clipped_than_rounded():
    # 20 values near 45: clipping them at ~4 costs 20 * 41^2 ~ 34,000 in squared error, more than
    # the coarser rounding of 200,000 Gaussian values (~2,000), so the MSE optimum keeps them.
    s = _stats(_gaussian_with_outliers(), batches=4)
    assert compute_threshold(s, "mse") > 35


@pytest.mark.parametrize("method", ["entropy", "mse", "percentile"])
@pytest.mark.parametrize("dist", ["normal", "laplace"])
def test_clipping_methods_cut_the_tail_of_smooth_distributions(method, dist):
    values = getattr(np.random.default_rng(8), dist)(0, 1, 200_000)
    s = _stats(values, batches=3)
    t = compute_threshold(s, method)
    assert 2.5 < t < 0.95 * s.amax, f"{method} on {dist}: {t} vs max {s.amax}"


def test_entropy_keeps_a_uniform_distribution_almost_whole():
    values = np.random.default_rng(5).uniform(0, 1, 100_000)
    t = compute_threshold(_stats(values), "entropy")
    assert t > 0.85


def test_mse_on_a_point_mass_histogram_keeps_it_in_range():
    hist = np.zeros(2048)
    hist[1000] = 1000  # every value at the centre of bin 1000
    t = mse_threshold(hist, 1.0)
    assert t >= 1000.5


def test_entropy_ignores_the_spike_of_zeros_after_relu():
    rng = np.random.default_rng(6)
    values = np.concatenate([np.zeros(100_000), np.abs(rng.normal(0, 1, 100_000))])
    t = compute_threshold(_stats(values), "entropy")
    # Without suppressing the zero bin the search collapses to a tiny threshold.
    assert t > 2.0


def test_percentile_threshold_on_a_hand_made_histogram():
    hist = np.array([0, 10, 10, 10, 10, 0, 0, 0], dtype=float)
    assert percentile_threshold(hist, 0.5, 50.0) == pytest.approx(1.5)
    assert percentile_threshold(hist, 0.5, 100.0) == pytest.approx(2.5)


def test_entropy_threshold_is_a_bin_edge_within_the_histogram():
    hist = np.random.default_rng(7).integers(1, 100, 600).astype(float)
    t = entropy_threshold(hist, 0.01)
    # TensorRT's search starts at 128 bins (128 x 0.01 = 1.28) and ends at the histogram's 600 bins (6.0).
    assert 1.28 - 1e-9 <= t <= 6.0 + 1e-9
    assert abs(t / 0.01 - round(t / 0.01)) < 1e-6


@pytest.mark.parametrize("p", [0, -1, 100.5, float("nan")])
def test_percentile_outside_range_is_refused(p):
    with pytest.raises(PrecisionError, match=r"outside \(0, 100\]"):
        check_method("percentile", p)


def test_unknown_method_is_refused():
    with pytest.raises(PrecisionError, match="accepted: entropy, max, percentile, mse"):
        check_method("kl", 99.9)


def test_histogram_methods_need_histograms():
    with pytest.raises(PrecisionError, match="needs histograms"):
        compute_threshold(TensorStats(amax=3.0, count=10), "entropy")


def test_non_finite_statistics_are_refused():
    with pytest.raises(PrecisionError, match="NaN/Inf"):
        compute_thresholds({"t": TensorStats(amax=float("inf"), count=1)}, "max")


def test_all_zero_tensor_has_zero_threshold_for_every_method():
    s = _stats(np.zeros(1000))
    for method in ("max", "percentile", "entropy", "mse"):
        assert compute_threshold(s, method) == 0.0
