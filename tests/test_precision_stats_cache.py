"""The calibration-statistics cache survives corrupt files and serialises processes computing one entry."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rtdeploy import api
from manifest_fakes import write_onnx_manifest

from rtdeploy.artifacts import read_manifest
from rtdeploy.models import model_meta


def _tiny_fp32(path: Path) -> Path:
    """input -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm, as an FP32 artifact."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.5, (10, 4)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc"], ["logits"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    write_onnx_manifest(path, model_meta(20, image_size=8).to_dict())  # the complete manifest export writes
    return path


@pytest.fixture
def setup(tmp_path):
    cache = tmp_path / "cache"
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).normal(0, 1, (16, 3, 8, 8)).astype(np.float32))
    return _tiny_fp32(tmp_path / "tiny.onnx"), calib, cache


def _quantize(model, calib, cache, out):
    return api.quantize(model, int8=True, calib_dir=calib, method="entropy", stats_cache=cache, output=out)


def _cache_file(cache: Path) -> Path:
    (entry,) = (cache / "calibration").glob("*.npz")
    return entry


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the stored histograms: only the zip's CRC-32 can tell
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _flip_a_bit], ids=["truncated", "bit-flipped"])
def test_a_corrupt_cache_file_is_ignored_with_one_warning_and_rebuilt(setup, tmp_path, caplog, damage):
    model, calib, cache = setup
    first = _quantize(model, calib, cache, tmp_path / "a.onnx")
    assert first.report["stats_cache"] == "miss"
    entry = _cache_file(cache)
    damage(entry)
    with caplog.at_level(logging.WARNING):
        again = _quantize(model, calib, cache, tmp_path / "b.onnx")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "calibration statistics cache" in r.getMessage()]
    assert len(warnings) == 1 and "corrupt" in warnings[0].getMessage() and str(entry) in warnings[0].getMessage()
    assert again.report["stats_cache"] == "miss"
    assert read_manifest(again.path)["quantization"]["scales"] == read_manifest(first.path)["quantization"]["scales"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        third = _quantize(model, calib, cache, tmp_path / "c.onnx")
    assert third.report["stats_cache"] == "hit" and not [r for r in caplog.records if r.levelno >= logging.WARNING]


class _Seen(logging.Handler):
    def __init__(self, words: str):
        super().__init__(logging.WARNING)
        self.words, self.event = words, threading.Event()

    def emit(self, record):
        if self.words in record.getMessage():
            self.event.set()


def test_a_second_process_waits_for_the_lock_and_reuses_the_entry(setup, tmp_path):
    model, calib, cache = setup
    _quantize(model, calib, cache, tmp_path / "a.onnx")
    entry = _cache_file(cache)
    saved = tmp_path / "saved.npz"
    shutil.move(entry, saved)  # as if another process were still computing this entry

    fd = os.open(entry.with_suffix(".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the test is that other process
    seen = _Seen("waiting for it")
    logging.getLogger("rtdeploy").addHandler(seen)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(r=_quantize(model, calib, cache, tmp_path / "b.onnx")))
    try:
        worker.start()
        assert seen.event.wait(timeout=120), "the second run did not wait for the lock"
        assert worker.is_alive() and not (tmp_path / "b.onnx").exists()
        shutil.move(saved, entry)  # the "other process" finishes its entry ...
    finally:
        os.close(fd)  # ... and releases the lock
        worker.join(timeout=300)
        logging.getLogger("rtdeploy").removeHandler(seen)
    assert result["r"].report["stats_cache"] == "hit", "after waiting, the entry the other process wrote is read, not recomputed"
