"""Streaming statistics of one activation tensor: its absolute maximum and a histogram of |x|.

Memory stays fixed whatever the data size: each batch is folded into ``bins`` counters and
dropped. The histogram covers ``[0, range]`` in equal bins. The first non-zero batch sets
``range`` to its maximum; when a later batch exceeds it, the range doubles (pairs of bins merge,
which keeps every count exact) until it covers the new maximum. So the final histogram always
spends between ``bins / 2`` and ``bins`` bins on ``[0, amax]`` -- at least 1,024 with the default
2,048 -- in one pass over the data (a two-pass min/max-then-histogram scheme would run the model
twice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BINS = 2048
_CHUNK = 1 << 20  # values per histogram step: keeps the temporaries in cache


@dataclass
class TensorStats:
    """What calibration knows about one tensor.

    Attributes:
        amax: the largest |x| seen.
        count: how many values were seen.
        hist: counts of |x| in ``len(hist)`` equal bins over ``[0, hist_range]`` (None when only
            the maximum was collected).
        hist_range: the upper edge of the last bin.
    """

    amax: float
    count: int
    hist: np.ndarray | None = None
    hist_range: float = 0.0


class AbsMax:
    """Running maximum of |x| (what the ``max`` calibrator and the FP16 guard need)."""

    def __init__(self) -> None:
        self.amax, self.count = 0.0, 0

    def update(self, x: np.ndarray) -> None:
        """Fold one batch in."""
        if x.size:
            self.amax = max(self.amax, float(x.max()), -float(x.min()))
            self.count += x.size

    def result(self) -> TensorStats:
        """The statistics so far."""
        return TensorStats(self.amax, self.count)


class AbsHistogram:
    """Running histogram of |x| with exact range growth (see the module docstring)."""

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if bins < 256 or bins % 2:
            raise ValueError("bins must be an even number >= 256")
        self.bins = bins
        self.counts = np.zeros(bins, dtype=np.int64)
        self.range = 0.0
        self.amax = 0.0
        self.count = 0

    def update(self, x: np.ndarray) -> None:
        """Fold one batch in."""
        flat = x.reshape(-1)
        for start in range(0, flat.size, _CHUNK):
            self._update_chunk(flat[start:start + _CHUNK])

    def _update_chunk(self, x: np.ndarray) -> None:
        a = np.abs(x)
        m = float(a.max()) if a.size else 0.0
        self.count += a.size
        self.amax = max(self.amax, m)
        if m == 0.0:
            self.counts[0] += a.size
            return
        if self.range == 0.0:
            self.range = m
        while m > self.range:
            self._double()
        idx = np.multiply(a, np.float32(self.bins / self.range), out=a).astype(np.int32)
        np.minimum(idx, self.bins - 1, out=idx)
        self.counts += np.bincount(idx, minlength=self.bins)

    def _double(self) -> None:
        merged = self.counts.reshape(-1, 2).sum(axis=1)
        self.counts = np.concatenate([merged, np.zeros(self.bins // 2, dtype=np.int64)])
        self.range *= 2.0

    def result(self) -> TensorStats:
        """The statistics so far."""
        return TensorStats(self.amax, self.count, self.counts.copy(), self.range)
