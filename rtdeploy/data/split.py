"""The validation part of a calibration set: images set aside so that a quantized model is judged
on real inputs it was never calibrated on.

``rtdeploy run`` without ``--images`` holds out a seeded quarter of the calibration images (at
least :data:`MIN_VALIDATION`, at most :data:`MAX_VALIDATION`); every stage that calibrates reads
only the rest, and every validation compares on the held-out part. A set too small to leave
:data:`MIN_CALIBRATION` images for calibration after that is used whole for calibration, and the
validation falls back to synthetic inputs (and says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VALIDATION_FRACTION = 0.25
MIN_VALIDATION = 8
MAX_VALIDATION = 500
MIN_CALIBRATION = 16
PARTS = ("calibration", "validation")


@dataclass(frozen=True)
class Split:
    """Which samples of a set of ``total`` are held out for validation (sorted positions; empty
    when the set is too small to split)."""

    total: int
    held: np.ndarray

    @property
    def possible(self) -> bool:
        """True when some samples are held out."""
        return len(self.held) > 0

    def positions(self, part: str) -> np.ndarray:
        """Sorted positions of ``part`` (``calibration``: all but the held-out ones; ``validation``)."""
        if part == "validation":
            return self.held
        keep = np.ones(self.total, dtype=bool)
        keep[self.held] = False
        return np.flatnonzero(keep)

    def too_few(self) -> str:
        """Why nothing is held out (one clause for a verdict line)."""
        return (f"{self.total:,} calibration images are too few to hold {MIN_VALIDATION} out for validation and keep "
                f"{MIN_CALIBRATION} to calibrate on (give {MIN_VALIDATION + MIN_CALIBRATION} or more, or --images)")


def validation_split(total: int, seed: int = 0) -> Split:
    """The held-out validation samples of a calibration set of ``total`` samples, chosen with ``seed``."""
    count = min(MAX_VALIDATION, max(MIN_VALIDATION, round(total * VALIDATION_FRACTION)))
    if total - count < MIN_CALIBRATION:
        return Split(total, np.zeros(0, dtype=np.int64))
    rng = np.random.default_rng([seed, 2])  # a stream of its own: subsets and fallback hold-outs use others
    return Split(total, np.sort(rng.choice(total, size=count, replace=False)))


def split_part(source, part: str, seed: int = 0):
    """``part`` of ``source`` (a folder or tensor-file source); the whole source when it cannot be split.

    Args:
        source: an :class:`~rtdeploy.data.sources.ImageFolderSource` or ``TensorFileSource``.
        part: ``calibration`` or ``validation``.
        seed: the split's seed.

    Returns:
        ``(source, split)``: the part's source (its description says which part) and the split.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    split = validation_split(len(source), seed)
    if not split.possible:
        return source, split
    note = "held out for validation" if part == "validation" else "the others held out for validation"
    return source.subset(split.positions(part), note), split
