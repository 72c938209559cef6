"""Calibrators: from a tensor's statistics to its clipping threshold (amax) for symmetric int8.

- ``max``: the largest |x| seen. Never clips; wastes resolution on rare outliers.
- ``percentile``: the |x| below which ``percentile`` % of the values lie (99.99 by default).
- ``entropy``: TensorRT's entropy calibration: the threshold whose 128-level quantized
  distribution of |x| is closest to the original in KL divergence (Migacz, "8-bit Inference with
  TensorRT", GTC 2017), searched at every bin edge from bin 128 up.
- ``mse``: the threshold that minimises the expected squared error of quantize-dequantize, with each
  bin's count at its centre.
All work on the histogram of |x| (see :mod:`histogram`); ``max`` needs only the maximum. They are
registered as calibrators by :mod:`builtin_calibrators`, beside the model-aware ``consumer-mse``.
"""

from __future__ import annotations

import numpy as np

from rtdeploy.errors import PrecisionError
from rtdeploy.precision.int8.histogram import TensorStats

STATS_METHODS = ("entropy", "max", "percentile", "mse")  # computable from a tensor's statistics alone
DEFAULT_PERCENTILE = 99.99
QUANT_LEVELS = 128  # 0..127 on the positive side of symmetric int8


def check_percentile(percentile: float) -> float:
    """``percentile`` if it lies in (0, 100].

    Raises:
        PrecisionError: anything else.
    """
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 < percentile <= 100 or percentile != percentile:
        raise PrecisionError(f"percentile {percentile!r} is outside (0, 100]; give e.g. 99.99 (100 is the same as max)")
    return float(percentile)


def compute_threshold(stats: TensorStats, method: str, percentile: float = DEFAULT_PERCENTILE) -> float:
    """The clipping threshold of one tensor by ``method``.

    Raises:
        PrecisionError: bad method/percentile, or a histogram method given max-only statistics.
    """
    check_percentile(percentile)
    if method not in STATS_METHODS:
        raise PrecisionError(f"the {method} calibrator needs the model and images, or is not one of the statistics calibrators "
                             f"({', '.join(STATS_METHODS)}); call it through rtdeploy.precision.calibrators")
    if stats.amax == 0.0 or method == "max":
        return float(stats.amax)
    if stats.hist is None:
        raise PrecisionError(f"the {method} calibrator needs histograms; collect them (any method but max)")
    hist = _trim(stats.hist)
    width = stats.hist_range / len(stats.hist)
    if method == "percentile":
        t = percentile_threshold(hist, width, percentile)
    elif method == "entropy":
        t = entropy_threshold(hist, width)
    else:
        t = mse_threshold(hist, width)
    return float(min(t, stats.amax))


def _trim(hist: np.ndarray) -> np.ndarray:
    nonzero = np.flatnonzero(hist)
    return hist[: nonzero[-1] + 1] if nonzero.size else hist[:1]


def percentile_threshold(hist: np.ndarray, width: float, percentile: float) -> float:
    """Upper edge of the bin where the cumulative count reaches ``percentile`` %."""
    cdf = np.cumsum(hist, dtype=np.float64)
    target = cdf[-1] * percentile / 100.0
    idx = int(np.searchsorted(cdf, target * (1 - 1e-12), side="left"))
    return (min(idx, len(hist) - 1) + 1) * width


def entropy_threshold(hist: np.ndarray, width: float, levels: int = QUANT_LEVELS) -> float:
    """TensorRT-style KL-divergence threshold over a histogram of |x| (bins of ``width``).

    For each candidate ``i`` (number of bins kept, from ``levels`` to all): the reference P is the
    first ``i`` bins with the clipped tail added to the last one; the candidate Q merges those ``i``
    bins into ``levels`` equal groups (bin ``j`` goes to group ``j * levels // i``) and spreads each
    group's mass evenly over its non-empty bins. The ``i`` with the smallest KL(P || Q) wins (the
    largest on a tie); the threshold is its upper edge.

    The first bin's count is replaced by the second's before the search, as NVIDIA's calibrators
    do: after a ReLU it holds the exact zeros (often half of all values), which quantize without
    error but would otherwise dominate the divergence and drive the threshold far too low.
    """
    n = len(hist)
    if n <= levels:
        return n * width
    h = hist.astype(np.float64)
    h[0] = h[1]
    tail = np.concatenate([np.cumsum(h[::-1])[::-1][1:], [0.0]])  # tail[i-1] = sum(h[i:])
    best_i, best_kl = n, np.inf
    for i in range(levels, n + 1):
        kl = _kl_for_candidate(h[:i], tail[i - 1], levels)
        if kl <= best_kl:
            best_i, best_kl = i, kl
    return best_i * width


def _kl_for_candidate(sliced: np.ndarray, outliers: float, levels: int) -> float:
    i = len(sliced)
    p = sliced.copy()
    p[-1] += outliers
    nonzero = (sliced != 0).astype(np.float64)
    group = (np.arange(i) * levels) // i
    sums = np.bincount(group, weights=sliced, minlength=levels)
    counts = np.bincount(group, weights=nonzero, minlength=levels)
    per_bin = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    q = per_bin[group] * nonzero
    return _kl(p, q)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    ps, qs = p.sum(), q.sum()
    if ps == 0 or qs == 0:
        return np.inf
    p = p / ps
    q = q / qs
    mask = p > 0
    if np.any(q[mask] == 0):
        # Q lost mass P has (only the clipped tail bin can be empty in Q): smooth it as TensorRT does.
        q = np.where(mask & (q == 0), 1e-4, q)
        q = q / q.sum()
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def mse_threshold(hist: np.ndarray, width: float, levels: int = QUANT_LEVELS - 1, chunk: int = 256) -> float:
    """The threshold (a bin edge) minimising sum(count * (x - dequant(quant(x)))^2) over bin centres."""
    n = len(hist)
    centers = (np.arange(n) + 0.5) * width
    weights = hist.astype(np.float64)
    candidates = np.arange(max(1, n // 64), n + 1) * width
    best_t, best_err = n * width, np.inf
    for start in range(0, len(candidates), chunk):
        t = candidates[start:start + chunk, None]
        step = t / levels
        q = np.minimum(np.rint(centers[None, :] / step), levels) * step
        err = ((centers[None, :] - q) ** 2) @ weights
        k = int(np.argmin(err))
        if err[k] < best_err:
            best_t, best_err = float(t[k, 0]), float(err[k])
    return best_t


def compute_thresholds(stats: dict[str, TensorStats], method: str, percentile: float = DEFAULT_PERCENTILE) -> dict[str, float]:
    """:func:`compute_threshold` for every tensor, by name.

    Raises:
        PrecisionError: a tensor's statistics hold NaN/Inf (the model produced non-finite values).
    """
    out = {}
    for name, s in stats.items():
        if not np.isfinite(s.amax):
            raise PrecisionError(f"tensor {name} reached NaN/Inf on the calibration data; check the inputs and the model")
        out[name] = compute_threshold(s, method, percentile)
    return out
