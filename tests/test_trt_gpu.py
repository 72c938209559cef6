"""Real engines on a real GPU: build FP32/FP16/INT8, run them, compare with onnxruntime.

These need TensorRT, cuda-python and an NVIDIA GPU; elsewhere they skip with the reason
(``rtdeploy.trt.availability()``). The CPU-only proof is tests/test_trt_conformance.py.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]


@pytest.fixture(scope="module")
def gpu():
    from rtdeploy.trt import availability

    report = availability()
    if not report["ok"]:
        pytest.skip(f"needs TensorRT, cuda-python and an NVIDIA GPU: {report['hint']}")
    return report


@pytest.fixture(scope="module")
def model(exported, request):
    """CIFAR ResNet-20: trained weights when ../shared/data/cifar10 is there (meaningful INT8), else seed 0."""
    try:
        weights = request.getfixturevalue("cifar_weights")(20)
    except pytest.skip.Exception:
        weights = None
    return exported(20, weights=weights) if weights else exported(20)


def inputs(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 32, 32)).astype(np.float32)


def compare(engine_path, onnx_path, x):
    from rtdeploy.runners.ort_runner import OrtRunner
    from rtdeploy.trt import TrtRunner

    with TrtRunner(engine_path) as trt_runner, OrtRunner(onnx_path) as ort_runner:
        got = trt_runner.infer({"input": x})["logits"].astype(np.float32)
        ref = ort_runner.infer({"input": x})["logits"].astype(np.float32)
    cos = float((got * ref).sum() / (np.linalg.norm(got) * np.linalg.norm(ref)))
    top1 = float((got.argmax(1) == ref.argmax(1)).mean())
    return got, ref, cos, top1


def test_fp32_engine_matches_onnxruntime(gpu, model, tmp_path):
    from rtdeploy import api

    built = api.build_engine(model.path, precision="fp32", batch="1:8:32", output=tmp_path / "r20.fp32.engine")
    assert built.manifest["layers"]["by_precision"].get("fp32", 0) > 0
    got, ref, cos, top1 = compare(built.path, model.path, inputs(16))
    np.testing.assert_allclose(got, ref, rtol=1e-2, atol=1e-3)  # TF32 convolutions are allowed
    assert top1 == 1.0


def test_fp16_engine_matches_onnxruntime(gpu, model, tmp_path):
    from rtdeploy import api

    if not hasattr(api, "quantize"):
        pytest.skip("api.quantize (FP16 graph) is not available in this install")
    built = api.build_engine(model.path, precision="fp16", batch="1:8:32", output=tmp_path / "r20.fp16.engine")
    assert built.manifest["layers"]["verified"] and built.manifest["layers"]["by_precision"].get("fp16", 0) > 0
    _, _, cos, top1 = compare(built.path, model.path, inputs(32))
    assert cos > 0.999 and top1 >= 0.95


def test_int8_engine_agrees_with_onnxruntime(gpu, model, tmp_path):
    from rtdeploy import api

    if not hasattr(api, "quantize"):
        pytest.skip("api.quantize (INT8 Q/DQ) is not available in this install")
    built = api.build_engine(model.path, precision="int8", batch="1:8:32", output=tmp_path / "r20.int8.engine")
    assert built.manifest["layers"]["verified"] and built.manifest["layers"]["by_precision"].get("int8", 0) > 0
    _, _, cos, top1 = compare(built.path, built.onnx, inputs(32))  # against the same Q/DQ model in onnxruntime
    assert cos > 0.99 and top1 >= 0.9


def test_runner_graphs_timings_and_profile_limits(gpu, model, tmp_path):
    from rtdeploy import api
    from rtdeploy.errors import EngineError
    from rtdeploy.trt import TrtRunner

    built = api.build_engine(model.path, precision="fp32", batch="1:4:8", output=tmp_path / "r20.engine")
    x = inputs(4, seed=3)
    with TrtRunner(built.path) as plain, TrtRunner(built.path, cuda_graph=True) as graphed:
        a = plain.infer({"input": x})["logits"]
        for _ in range(2):
            b = graphed.infer({"input": x})["logits"]
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        assert all(v >= 0 for v in graphed.last_timings.values()) and set(graphed.last_timings) >= {"h2d_ms", "compute_ms", "d2h_ms"}
        assert graphed.infer_device_only() > 0
        with pytest.raises(EngineError, match="outside the profile 1:4:8"):
            plain.infer({"input": inputs(9)})
