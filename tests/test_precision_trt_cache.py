"""TensorRT calibration cache: exact text format, round trip through quantize, foreign caches."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rtdeploy import api
from rtdeploy.artifacts import read_manifest
from rtdeploy.errors import PrecisionError
from rtdeploy.precision.int8 import trt_cache


def test_hex_is_big_endian_float32():
    assert trt_cache.float_to_hex(1.0) == "3f800000"
    assert trt_cache.float_to_hex(0.5) == "3f000000"
    assert trt_cache.hex_to_float("3c010204") == struct.unpack(">f", bytes.fromhex("3c010204"))[0]
    value = np.float32(2.640 / 127)
    assert trt_cache.hex_to_float(trt_cache.float_to_hex(value)) == value


def test_format_and_parse_round_trip():
    scales = {"input": 0.0207, "/Relu_output_0": 0.09, "odd:name": 1e-3}
    text = trt_cache.format_cache(scales, "8601")
    lines = text.splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2"
    assert lines[1] == f"input: {struct.pack('>f', 0.0207).hex()}"
    assert len(lines) == 4 and text.endswith("\n")
    parsed = trt_cache.parse_cache(text)
    assert list(parsed) == list(scales)
    for k, v in scales.items():
        assert parsed[k] == pytest.approx(v, rel=1e-7)


@pytest.mark.parametrize("text, match", [
    ("", "does not start with a TensorRT header"),
    ("hello\ninput: 3f800000\n", "does not start with a TensorRT header"),
    ("TRT-8601-EntropyCalibration2\ninput: zz\n", "line 2"),
    ("TRT-8601-EntropyCalibration2\ninput 3f800000\n", "line 2"),
    ("TRT-8601-EntropyCalibration2\ninput: bf800000\n", "positive"),
])
def test_malformed_caches_are_refused(text, match):
    with pytest.raises(PrecisionError, match=match):
        trt_cache.parse_cache(text)


def test_cache_for_another_model_names_missing_tensors():
    cache = {"input": 0.1, "/other/Relu": 0.2}
    with pytest.raises(PrecisionError, match=r"no scale for 2 of the 3 tensors.*/a/Relu, /b/Relu.*another model"):
        trt_cache.scales_for(cache, ["input", "/a/Relu", "/b/Relu"], "calibration cache x.calib")


def _npy(tmp_path, n=12, size=32, seed=0):
    path = tmp_path / f"calib{seed}.npy"
    np.save(path, np.random.default_rng(seed).normal(0, 1, (n, 3, size, size)).astype(np.float32))
    return path


@pytest.mark.slow
def test_quantize_writes_cache_and_reads_it_back_to_the_same_scales(exported, tmp_path):
    fp32 = exported(20).path
    calib = _npy(tmp_path)
    cache = tmp_path / "r20.calib"
    first = api.quantize(fp32, int8=True, calib_dir=calib, method="entropy", trt_cache=cache,
                         output=tmp_path / "a.int8.onnx", stats_cache=False)
    text = cache.read_text()
    assert text.startswith("TRT-8601-EntropyCalibration2\n")
    written = trt_cache.parse_cache(text)
    scales = read_manifest(first.path)["quantization"]["scales"]
    # every quantized tensor is in the cache, plus every other activation (for implicit INT8)
    assert set(scales) < set(written) and "logits" in written
    for t, s in scales.items():
        assert written[t] == pytest.approx(s, rel=1e-7)
    second = api.quantize(fp32, int8=True, from_trt_cache=cache, output=tmp_path / "b.int8.onnx", stats_cache=False)
    m2 = read_manifest(second.path)
    assert m2["quantization"]["scales"] == pytest.approx(scales, rel=1e-7)
    assert m2["calibration"]["source"] == "trt-cache"
    assert first.path.read_bytes() != b"" and second.manifest["sha256"] == first.manifest["sha256"]


@pytest.mark.slow
def test_cache_of_another_model_is_refused_without_output(exported, tmp_path):
    calib = _npy(tmp_path)
    cache = tmp_path / "r20.calib"
    api.quantize(exported(20).path, int8=True, calib_dir=calib, trt_cache=cache, output=tmp_path / "a.onnx", stats_cache=False)
    out = tmp_path / "r18.int8.onnx"
    with pytest.raises(PrecisionError, match="it was made for another model"):
        api.quantize(exported(18, 32).path, int8=True, from_trt_cache=cache, output=out, stats_cache=False)
    assert not out.exists()
