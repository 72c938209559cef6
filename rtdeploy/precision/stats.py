"""Activation statistics for a precision pass, from the on-disk cache when possible.

Shared by the FP16 branch (maxima, for the overflow guard) and the INT8 branch (histograms or
maxima, for the calibrators); both import it, it imports neither.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def resolve_cache_dir(cache_dir: str | os.PathLike | bool | None):
    """``True``/``None`` -> the default cache folder; ``False`` -> no cache; else that folder."""
    from rtdeploy.artifacts import default_cache_dir

    if cache_dir is False:
        return None
    return default_cache_dir() if cache_dir in (True, None) else Path(cache_dir)


def gather_stats(parent, tensors: list[str], split, method: str, cache_dir, progress: bool):
    """Statistics of ``tensors`` on the statistics part of ``split``, from the cache when possible.

    Returns:
        ``(stats by tensor, "hit" | "miss" | "off")``.
    """
    from rtdeploy.precision.int8.calibrators import needs_histogram
    from rtdeploy.precision.int8.collect import StatsCache, batch_size_for, collect_stats
    from rtdeploy.precision.int8.histogram import DEFAULT_BINS

    cache = StatsCache(resolve_cache_dir(cache_dir))
    fingerprint = split.fingerprint()
    hist_key = cache.key(parent.sha256, fingerprint, tensors, True, DEFAULT_BINS)
    keys = [hist_key] if needs_histogram(method) else [cache.key(parent.sha256, fingerprint, tensors, False, 0), hist_key]
    for key in keys:
        stats = cache.load(key, tensors)
        if stats is not None:
            log.info("calibration statistics from the cache (%s)", key)
            return stats, "hit"
    batch = batch_size_for(parent.model, tensors)
    histogram = needs_histogram(method)
    stats = collect_stats(parent.model, tensors, split.stats_batches(batch, progress=progress), histogram=histogram)
    cache.save(keys[0], stats)
    return stats, "miss" if cache.folder is not None else "off"
