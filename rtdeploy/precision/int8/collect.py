"""Activation statistics with onnxruntime, and their on-disk cache.

The FP32 graph is *augmented*: every tensor to observe becomes an extra graph output. Batches
stream through one onnxruntime session; each output is folded into its tensor's running
statistics (:mod:`histogram`) and dropped, so memory holds one batch of activations at most. The
batch size is chosen from the activation volume per sample so that this stays near
``memory_budget`` bytes.

The result is cached in a ``.npz`` file named by a key over the model's sha256, the calibration
data's fingerprint, the observed tensors and the kind of statistics. Histograms serve every
method, so switching ``--method`` re-reads the cache instead of re-running the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rtdeploy.errors import DataError, PrecisionError, RtDeployError
from rtdeploy.precision.graph import graph_input_names
from rtdeploy.precision.int8.histogram import DEFAULT_BINS, AbsHistogram, AbsMax, TensorStats

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
DEFAULT_MEMORY_BUDGET = 256 << 20
MAX_BATCH = 256


def augment(model, tensors: list[str]):
    """A copy of ``model`` whose outputs are ``tensors`` (float32 activations)."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in tensors)
    return m


def batch_size_for(model, tensors: list[str], memory_budget: int = DEFAULT_MEMORY_BUDGET, *,
                   sample_shape: tuple[int, ...] | None = None) -> int:
    """A batch size whose observed activations fit about ``memory_budget`` bytes (1..256);
    ``sample_shape`` (C, H, W) stands in for input dims the graph names (see :func:`rtdeploy.footprint.footprint`).

    Raises:
        PrecisionError: not even that batch fits in the memory available (the model's declared shapes).
    """
    from rtdeploy.footprint import check_model_memory, footprint

    fp = footprint(model, sample_shape)
    batch = int(max(1, min(MAX_BATCH, memory_budget // max(1, fp.held_per_sample(tensors)))))
    check_model_memory(fp, batch, sample_shape=sample_shape, holding=tensors, error=PrecisionError,
                       what=f"observing {len(tensors)} activations at batch {batch}")
    return batch


def make_session(model, *, threads: int = 0):
    """An onnxruntime CPU session over an in-memory model, without the memory arena (its pools
    keep the peak of every batch shape alive) and without spinning threads (rtdeploy.runners.ort_runner). A fixed-batch model gets a session that takes any
    number of samples in chunks of its own batch size (:mod:`rtdeploy.precision.int8.fixed_batch`)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = False
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # a long pass: faster on busy cores
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    from rtdeploy.precision.int8.fixed_batch import FixedBatchSession, fixed_batch_of

    batch = fixed_batch_of(model)
    return session if batch is None else FixedBatchSession(session, batch, graph_input_names(model.graph)[0])


def collect_stats(model, tensors: list[str], batches: Iterable[np.ndarray], *, histogram: bool, bins: int = DEFAULT_BINS) -> dict[str, TensorStats]:
    """Run ``batches`` through ``model`` and gather the statistics of ``tensors``.

    Args:
        model: the FP32 ``onnx.ModelProto``.
        tensors: names of the tensors to observe.
        batches: float32 NCHW arrays.
        histogram: collect histograms of |x| (every method), or only the maximum (``max``).
        bins: histogram bins.

    Returns:
        statistics by tensor name.

    Raises:
        DataError: no batch came, or a batch holds NaN/Inf.
    """
    session = make_session(augment(model, tensors))
    input_name = graph_input_names(model.graph)[0]
    acc = {t: (AbsHistogram(bins) if histogram else AbsMax()) for t in tensors}
    seen = 0
    for images in batches:
        if not np.isfinite(images).all():
            raise DataError("a calibration batch holds NaN or Inf; fix or drop those samples")
        outputs = session.run(tensors, {input_name: images})
        for name, value in zip(tensors, outputs):
            acc[name].update(value)
        seen += len(images)
    if seen == 0:
        raise DataError("no calibration samples reached the model; give a folder with images or a non-empty tensor file")
    log.info("collected %s of %d tensors over %d samples", "histograms" if histogram else "maxima", len(tensors), seen)
    return {t: a.result() for t, a in acc.items()}


def _read_stats(path: Path, tensors: list[str]) -> dict[str, TensorStats]:
    """Read one cache file; raises on anything missing, mis-shaped or not finite."""
    with np.load(path, allow_pickle=False) as z:
        names = [str(n) for n in z["names"]]
        if names != tensors:
            raise ValueError(f"it holds {len(names)} other tensors")
        amax, count = z["amax"], z["count"]
        hists = z["hist"] if "hist" in z.files else None
        ranges = z["range"] if hists is not None else None
    n = len(tensors)
    if amax.shape != (n,) or count.shape != (n,) or (amax < 0).any() or (count < 0).any():
        raise ValueError("maxima or counts are malformed")
    if hists is not None and (hists.ndim != 2 or hists.shape[0] != n or ranges.shape != (n,) or (hists < 0).any()):
        raise ValueError("histograms are malformed")
    return {
        t: TensorStats(float(amax[i]), int(count[i]), None if hists is None else hists[i].copy(),
                       float(ranges[i]) if hists is not None else 0.0)
        for i, t in enumerate(tensors)
    }


class StatsCache:
    """Collected statistics on disk, one ``.npz`` per (model, data, tensors, kind).

    Args:
        folder: where the files live; None disables the cache.
    """

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = None if folder is None else Path(folder) / "calibration"

    @staticmethod
    def key(model_sha256: str, data_fingerprint: str, tensors: list[str], histogram: bool, bins: int) -> str:
        """The cache key of one collection."""
        h = hashlib.sha256(f"{CACHE_FORMAT}\0{model_sha256}\0{data_fingerprint}\0{histogram}\0{bins}\0".encode())
        h.update("\0".join(tensors).encode())
        return h.hexdigest()[:32]

    def load(self, key: str, tensors: list[str]) -> dict[str, TensorStats] | None:
        """The cached statistics under ``key``, or None when absent.

        A file that cannot be read back whole and consistent (truncated, bit-flipped: the zip's
        CRC-32 catches flipped data) is ignored with one warning and removed, so the statistics are
        collected again and the entry rewritten.
        """
        if self.folder is None:
            return None
        path = self.folder / f"{key}.npz"
        try:
            return _read_stats(path, tensors)
        except FileNotFoundError:
            return None
        except Exception as e:  # zipfile.BadZipFile, ValueError, KeyError, EOFError, OSError ...: all mean "unusable"
            log.warning("ignoring the corrupt calibration statistics cache %s (%s: %s); collecting them again",
                        path, type(e).__name__, str(e).splitlines()[0][:120] if str(e) else "")
            with contextlib.suppress(OSError):
                path.unlink()
            return None

    def save(self, key: str, stats: dict[str, TensorStats]) -> Path | None:
        """Store ``stats`` under ``key`` (atomically); a cache that cannot be written is skipped."""
        if self.folder is None:
            return None
        from rtdeploy.files import atomic_path

        names = list(stats)
        arrays = {
            "names": np.array(names),
            "amax": np.array([stats[t].amax for t in names], dtype=np.float64),
            "count": np.array([stats[t].count for t in names], dtype=np.int64),
        }
        if all(stats[t].hist is not None for t in names):
            arrays["hist"] = np.stack([stats[t].hist for t in names])
            arrays["range"] = np.array([stats[t].hist_range for t in names], dtype=np.float64)
        path = self.folder / f"{key}.npz"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, **arrays)
        except (OSError, RtDeployError) as e:
            log.warning("could not write the calibration cache %s (%s); continuing without it", path, e)
            return None
        return path
