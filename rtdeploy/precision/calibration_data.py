"""Calibration images: the default bundled set, the size cap, and the held-out split.

The package ships ``rtdeploy/calib_data/`` (a few public-domain photos, see its README) so that
``rtdeploy quantize`` runs with no user data, from a checkout or a wheel; real deployments should calibrate on their own
images. When layers are chosen for fallback, a seeded random part of the calibration images is
held out: statistics come from the rest, and the fallback is judged on the held-out part.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rtdeploy.errors import DataError, PrecisionError

DEFAULT_CALIB_LIMIT = 1000
HOLDOUT_FRACTION = 0.2
MAX_HOLDOUT = 256
MIN_HOLDOUT = 16
SENSITIVITY_BUDGET_GMACS = 3000.0
MIN_IMAGES_FOR_HOLDOUT = 5


def bundled_calib_dir() -> Path:
    """Where the package's own calibration photos lie (``rtdeploy/calib_data``, package data, so
    a wheel install has them as a checkout does); the folder may be missing from a broken install."""
    return Path(__file__).resolve().parents[1] / "calib_data"


def default_calib_dir() -> Path:
    """The bundled calibration photos, used when no ``--calib-dir`` is given.

    Raises:
        DataError: this installation lacks them (a damaged install or a repackaging that dropped
            package data).
    """
    folder = bundled_calib_dir()
    if not folder.is_dir():
        raise DataError(
            f"no --calib-dir given and the bundled calibration photos ({folder}) are missing from this installation; "
            "reinstall rtdeploy, or pass --calib-dir DIR with a few hundred images like your real inputs"
        )
    return folder


def open_calibration(calib_dir: str | os.PathLike | None, meta, calib_size: int | None, seed: int, *,
                     hold_out_validation: bool = False):
    """The calibration source: ``calib_size`` images (all, up to 1,000, when None) from ``calib_dir``
    (the bundled photos when None). The source's ``path`` attribute is set to the folder used.

    With ``hold_out_validation``, the images :func:`rtdeploy.data.split.validation_split` holds out
    for validation are set aside first (when the set is large enough to split), so that no stage
    calibrates on an image the run validates on.

    Raises:
        DataError: missing/empty folder, unreadable tensors, or more images asked than exist.
    """
    from rtdeploy.data import open_source
    from rtdeploy.data.sources import select_subset
    from rtdeploy.data.split import split_part

    folder = Path(calib_dir) if calib_dir is not None else default_calib_dir()
    if calib_size is not None and (isinstance(calib_size, bool) or not isinstance(calib_size, int) or calib_size < 1):
        raise DataError(f"--calib-size {calib_size!r} is not a positive integer; give e.g. 500")
    source = open_source(folder, meta, seed=seed)
    held = 0
    if hold_out_validation:
        whole = len(source)
        source, _ = split_part(source, "calibration", seed)
        held = whole - len(source)
    limit = calib_size if calib_size is not None else min(len(source), DEFAULT_CALIB_LIMIT)
    if limit != len(source):
        what = f"{folder} (less the {held:,} held out for validation)" if held else str(folder)
        source = source.subset(select_subset(len(source), limit, seed, what=what, unit="images"))
    _refuse_constant_tensors(source, folder)
    source.path = folder.resolve()
    source.held_for_validation = held
    return source


def calibration_source(cfg, meta):
    """:func:`open_calibration` as a quantize config asks (folder, size, seed, validation hold-out)."""
    return open_calibration(cfg.calib_dir, meta, cfg.calib_size, cfg.seed, hold_out_validation=cfg.hold_out_validation)


def _refuse_constant_tensors(source, path: Path) -> None:
    """Refuse a tensor file whose chosen samples hold one value throughout (e.g. all zeros): every
    activation range would be a single point, and the INT8 scales meaningless."""
    from rtdeploy.data.sources import TensorFileSource

    if not isinstance(source, TensorFileSource):
        return
    low, high = np.inf, -np.inf
    for batch in source.batches(256):
        low, high = min(low, float(batch.images.min())), max(high, float(batch.images.max()))
        if low < high:
            return
    raise DataError(f"calibration tensors in {path} hold the single value {low:g} throughout, so no activation range "
                    "can be measured; give real (preprocessed) images")


def holdout_count(total: int, gmacs: float | None = None, layers: int = 1) -> int:
    """How many of ``total`` calibration images to hold out for choosing fallback layers.

    20 % of them, at most 256, and fewer for big models: ranking runs the held-out images once per
    quantizable layer, so the count is capped to keep that near ``SENSITIVITY_BUDGET_GMACS`` (about
    a minute on two CPU cores), but never below 16.

    Args:
        total: calibration images available.
        gmacs: multiply-accumulates per image, in billions (None: small).
        layers: how many layers will be ranked.

    Raises:
        PrecisionError: too few images to hold any out.
    """
    if total < MIN_IMAGES_FOR_HOLDOUT:
        raise PrecisionError(
            f"choosing fallback layers needs at least {MIN_IMAGES_FOR_HOLDOUT} calibration images "
            f"(got {total}); add images or drop --keep-fp/--target-agreement"
        )
    cap = MAX_HOLDOUT
    if gmacs:
        cap = max(MIN_HOLDOUT, min(MAX_HOLDOUT, int(SENSITIVITY_BUDGET_GMACS / (gmacs * max(1, layers)))))
    return max(1, min(cap, round(total * HOLDOUT_FRACTION)))


class SplitSource:
    """A calibration source split into a statistics part and a held-out part.

    Args:
        source: an ``rtdeploy.data`` source.
        holdout: how many samples to hold out (0: none), chosen at random with ``seed``.
        seed: the split's seed.
    """

    def __init__(self, source, holdout: int = 0, seed: int = 0):
        self.source = source
        total = len(source)
        rng = np.random.default_rng([seed, 1])
        self.held = np.zeros(total, dtype=bool)
        if holdout:
            self.held[rng.choice(total, size=holdout, replace=False)] = True
        self.stats_count = int(total - self.held.sum())
        self.holdout_count = int(self.held.sum())
        self._holdout: list[np.ndarray] | None = None

    @property
    def description(self) -> str:
        """The source's own description."""
        return self.source.description

    @property
    def path(self) -> str | None:
        """The calibration folder or file, resolved (None when unknown)."""
        p = getattr(self.source, "path", None)
        return None if p is None else str(p)

    def record(self, seed: int, stats_cache: str) -> dict:
        """The manifest's ``calibration`` record of images read from this split."""
        return {"source": "images", "dir": self.path, "data": self.description, "fingerprint": self.fingerprint(),
                "images": self.stats_count, "held_out": self.holdout_count, "seed": seed, "stats_cache": stats_cache,
                "validation_held_out": getattr(self.source, "held_for_validation", 0)}

    def fingerprint(self) -> str:
        """The source's fingerprint combined with the split (identifies the statistics part)."""
        h = hashlib.sha256(self.source.fingerprint().encode())
        h.update(np.packbits(self.held).tobytes())
        return h.hexdigest()

    def stats_batches(self, batch_size: int, *, progress: bool = False) -> Iterator[np.ndarray]:
        """Batches of the statistics part (held-out samples are set aside on the way)."""
        held: list[np.ndarray] = []
        for images in self._split(batch_size, progress, held):
            if len(images):
                yield images
        self._holdout = held

    def holdout_images(self, batch_size: int = 64) -> np.ndarray:
        """The held-out samples as one float32 array (read from the source if not yet seen)."""
        if self._holdout is None:
            held: list[np.ndarray] = []
            for _ in self._split(batch_size, False, held):
                pass
            self._holdout = held
        if not self._holdout:
            raise DataError("no held-out calibration images; give more images")
        return np.concatenate(self._holdout)

    def _split(self, batch_size: int, progress: bool, held: list) -> Iterator[np.ndarray]:
        start = 0
        for batch in self.source.batches(batch_size, progress=progress):
            images = batch.images
            mask = self.held[start:start + len(images)]
            start += len(images)
            if mask.any():
                held.append(images[mask])
            yield images[~mask]
