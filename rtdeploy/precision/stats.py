"""Activation statistics for a precision pass, from the on-disk cache when possible.

Shared by the FP16 branch (maxima, for the overflow guard) and the INT8 branch (histograms or
maxima, for the calibrators); both import it, it imports neither.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from rtdeploy.progress import phase

log = logging.getLogger(__name__)


def resolve_cache_dir(cache_dir: str | os.PathLike | bool | None):
    """``True``/``None`` -> the default cache folder; ``False`` -> no cache; else that folder."""
    from rtdeploy.files import default_cache_dir

    if cache_dir is False:
        return None
    return default_cache_dir() if cache_dir in (True, None) else Path(cache_dir)


def gather_stats(parent, tensors: list[str], split, calibrator, cache_dir, progress: bool):
    """Statistics of ``tensors`` on the statistics part of ``split``, from the cache when possible;
    histograms when ``calibrator`` (a :class:`~rtdeploy.precision.calibrators.Calibrator`, or None
    for maxima only) needs them.

    Returns:
        ``(stats by tensor, "hit" | "miss" | "off")``.
    """
    from rtdeploy.precision.calibrators import HISTOGRAM
    from rtdeploy.precision.int8.collect import StatsCache, batch_size_for, collect_stats
    from rtdeploy.precision.int8.histogram import DEFAULT_BINS

    cache = StatsCache(resolve_cache_dir(cache_dir))
    fingerprint = split.fingerprint()
    hist_key = cache.key(parent.sha256, fingerprint, tensors, True, DEFAULT_BINS)
    histogram = calibrator is not None and HISTOGRAM in calibrator.needs
    keys = [hist_key] if histogram else [cache.key(parent.sha256, fingerprint, tensors, False, 0), hist_key]
    stats = _from_cache(cache, keys, tensors)
    if stats is not None:
        return stats, "hit"
    with entry_lock(cache.folder, keys[0]):
        stats = _from_cache(cache, keys, tensors)  # another process may have written it while we waited
        if stats is not None:
            return stats, "hit"
        batch = batch_size_for(parent.model, tensors, sample_shape=parent.sample_shape)
        phase("calibration: %s of %d tensors on %s", "histograms" if histogram else "ranges", len(tensors), split.description)
        stats = collect_stats(parent.model, tensors, split.stats_batches(batch, progress=progress), histogram=histogram)
        cache.save(keys[0], stats)
    return stats, "miss" if cache.folder is not None else "off"


def _from_cache(cache, keys: list[str], tensors: list[str]):
    for key in keys:
        stats = cache.load(key, tensors)
        if stats is not None:
            log.info("calibration statistics from the cache (%s)", key)
            return stats
    return None


@contextlib.contextmanager
def entry_lock(folder: Path | None, key: str) -> Iterator[None]:
    """Hold an exclusive lock on one cache entry (``<key>.lock`` beside it) while it is computed.

    A second process asking for the same entry waits here, with one message, and then reads what
    the first wrote instead of computing it again. The lock is an ``flock``, so the system drops
    it if its holder dies. Without a cache folder, or where the folder cannot be written, there is
    nothing to share and nothing is locked.
    """
    if folder is None:
        yield
        return
    import fcntl

    path = Path(folder) / f"{key}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        log.warning("cannot create the calibration cache lock %s (%s); continuing without it", path, e.strerror or e)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another rtdeploy process is collecting the same calibration statistics (lock %s); waiting for it", path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
