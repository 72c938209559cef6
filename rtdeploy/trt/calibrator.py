"""Implicit INT8 calibration with TensorRT's entropy calibrator (8.6 and 10.x only).

The default INT8 path needs no calibrator: rtdeploy calibrates on the CPU and writes a Q/DQ ONNX
that every release builds. This is the optional alternative (``--implicit-calibration``): TensorRT
measures the FP32 graph's activations itself. Its cache is TensorRT's own text format
(``TRT-<version>-EntropyCalibration2`` followed by ``tensor: scale`` lines); a cache whose first
line is not of that form is ignored, so a stale or foreign file cannot poison a build.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from rtdeploy.files import write_bytes_atomic

log = logging.getLogger(__name__)

CACHE_TAG = "EntropyCalibration2"


def is_calibration_cache(data: bytes) -> bool:
    """True when ``data`` starts like a TensorRT entropy-calibration cache."""
    first = data.split(b"\n", 1)[0].decode("ascii", errors="replace").strip()
    return first.startswith("TRT-") and first.endswith(CACHE_TAG)


def rebatch(batches: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Regroup arrays of any batch sizes into float32 batches of exactly ``size`` (a short tail is dropped)."""
    pending: list[np.ndarray] = []
    count = 0
    for batch in batches:
        pending.append(np.asarray(batch, dtype=np.float32))
        count += len(batch)
        while count >= size:
            joined = np.concatenate(pending)
            yield np.ascontiguousarray(joined[:size])
            rest = joined[size:]
            pending, count = ([rest] if len(rest) else []), len(rest)
    if count:
        log.info("calibration: the last %d sample(s) do not fill a batch of %d and are left out", count, size)


def make_entropy_calibrator(trt, batches: Iterable[np.ndarray], *, batch_size: int, input_name: str,
                            memory, cache_path: Path | None):
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` through one device buffer.

    Args:
        trt: the ``tensorrt`` module (must have ``IInt8EntropyCalibrator2``).
        batches: float32 NCHW arrays (any batch sizes; regrouped to ``batch_size``).
        batch_size: samples per calibration batch (the calibration profile's batch).
        input_name: the network input the batches feed.
        memory: a device-memory object (:class:`rtdeploy.trt.device_memory.CudaRuntime`).
        cache_path: where the calibration cache is read from and written to (None: no cache).

    Call ``release()`` on the calibrator once the build is over: it frees its device buffer and stream.
    """

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = rebatch(batches, batch_size)
            self._device = None
            self._stream = None
            self.batches_used = 0

        def get_batch_size(self):
            # Explicit-batch networks take the batch from the calibration profile; TensorRT asks for 1.
            return 1

        def get_batch(self, names):
            if input_name not in names:
                return None
            batch = next(self._batches, None)
            if batch is None:
                return None
            if self._device is None:
                self._device = memory.malloc(batch.nbytes)
                self._stream = memory.stream()
            memory.copy_htod(self._device, batch, batch.nbytes, self._stream)
            memory.synchronize(self._stream)
            self.batches_used += 1
            return [int(self._device)]

        def read_calibration_cache(self):
            if cache_path is None or not Path(cache_path).is_file():
                return None
            data = Path(cache_path).read_bytes()
            if not is_calibration_cache(data):
                log.warning("%s is not a TensorRT calibration cache; calibrating afresh", cache_path)
                return None
            log.info("calibration: reusing the cache %s", cache_path)
            return data

        def write_calibration_cache(self, cache):
            if cache_path is not None:
                write_bytes_atomic(cache_path, bytes(cache))

        def release(self):
            """Free the device buffer and the stream (the build calls this when it is done)."""
            if self._device is not None:
                memory.free(self._device)
                self._device = None
            if self._stream is not None:
                memory.destroy_stream(self._stream)
                self._stream = None

    return EntropyCalibrator()
