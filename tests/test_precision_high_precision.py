"""``quantize --int8 --high-precision fp16``: FP16 float parts of the TensorRT Q/DQ graph, with the
overflow guard, float16-safe scales, and a graph onnxruntime runs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from rtdeploy import api
from tiny_graphs import huge_activation_model, write_fp32_artifact

from rtdeploy.artifacts import read_manifest
from rtdeploy.precision.fp16_float_parts import FP16_MIN_NORMAL, HIGH_PRECISION_OPSET, to_fp16_float_parts
from rtdeploy.precision.graph import initializers, producers

def _run(path_or_model, x):
    import onnxruntime as ort

    data = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


@pytest.fixture
def pair(tmp_path):
    """(fp32-float-part INT8, fp16-float-part INT8) of the huge-activation model."""
    fp32 = write_fp32_artifact(huge_activation_model(bias=0.05), tmp_path / "huge.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(3).normal(0, 1, (16, 3, 8, 8)).astype(np.float32))
    a = api.quantize(fp32, int8=True, calib_dir=calib, method="max", stats_cache=False, output=tmp_path / "a.onnx")
    b = api.quantize(fp32, int8=True, calib_dir=calib, method="max", stats_cache=False, high_precision="fp16", output=tmp_path / "b.onnx")
    return a, b


def test_float_parts_are_fp16_except_what_the_guard_keeps(pair):
    _, result = pair
    m = read_manifest(result.path)
    q = m["quantization"]
    assert q["target"] == "tensorrt" and q["high_precision"] == "fp16"
    assert {k["node"] for k in q["high_precision_fp16"]["kept_fp32"]} == {"scale_up", "relu", "scale_down"}
    model = onnx.load(str(result.path))
    assert next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")) >= HIGH_PRECISION_OPSET
    inits = initializers(model.graph)
    prod = producers(model.graph)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    w_dq, x_dq = prod[conv.input[1]], prod[conv.input[0]]
    assert w_dq.op_type == x_dq.op_type == "DequantizeLinear"
    assert inits[w_dq.input[0]].data_type == TensorProto.INT8
    assert inits[w_dq.input[1]].data_type == inits[x_dq.input[1]].data_type == TensorProto.FLOAT16  # DQ outputs float16
    assert inits[conv.input[2]].data_type == TensorProto.FLOAT16
    for name in ("big", "small"):  # read by kept nodes: float32
        assert inits[name].data_type == TensorProto.FLOAT
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT


def test_fp16_float_parts_run_in_onnxruntime_close_to_fp32_parts(pair):
    a, b = pair
    x = np.random.default_rng(4).normal(0, 1, (8, 3, 8, 8)).astype(np.float32)
    ref, out = _run(a.path, x), _run(b.path, x)
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() < 0.02 * np.abs(ref).max()


def test_scales_below_fp16_normal_range_are_raised_not_flushed():
    from rtdeploy.precision.int8.qdq import insert_qdq, plan_qdq

    model = huge_activation_model(bias=0.05, dead_channel=True)
    plan = plan_qdq(model)
    qmodel = insert_qdq(model, plan, {t: 0.05 for t in plan.observed()})
    w_scale = numpy_helper.to_array(next(i for i in qmodel.graph.initializer if i.name == "w_scale"))
    assert 0 < w_scale[2] < FP16_MIN_NORMAL and np.float16(w_scale[2]) < FP16_MIN_NORMAL  # the problem
    amax = {t: 10.0 for t in ("input", "c", "p", "f", "logits")} | {"m": 3e5, "r": 3e5, "s": 10.0}
    m16, info = to_fp16_float_parts(qmodel, amax)
    assert info["scales_raised_to_fp16_normal"] == 1
    inits = {i.name: numpy_helper.to_array(i) for i in m16.graph.initializer}
    scale16 = inits["w_scale"]
    assert scale16.dtype == np.float16 and scale16[2] == np.float16(FP16_MIN_NORMAL)
    np.testing.assert_array_equal(scale16[[0, 1, 3]], numpy_helper.to_array(
        next(i for i in qmodel.graph.initializer if i.name == "w_scale"))[[0, 1, 3]].astype(np.float16))
    w_dq = inits["w_quantized"].astype(np.float64) * scale16.astype(np.float64).reshape(-1, 1, 1, 1)
    assert np.abs(w_dq[2] - 1e-7).max() <= FP16_MIN_NORMAL / 2  # the dead channel stays (nearly) what it was
    x = np.random.default_rng(1).normal(0, 1, (4, 3, 8, 8)).astype(np.float32)
    ref, out = _run(qmodel, x), _run(m16, x)
    assert np.abs(out - ref).max() < 0.02 * np.abs(ref).max()


def test_resnet20_fp16_float_parts(exported, tmp_path):
    fp32 = exported(20).path
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).normal(0, 1, (16, 3, 32, 32)).astype(np.float32))
    a = api.quantize(fp32, int8=True, calib_dir=calib, method="max", stats_cache=False, output=tmp_path / "a.onnx")
    b = api.quantize(fp32, int8=True, calib_dir=calib, method="max", stats_cache=False, high_precision="fp16", output=tmp_path / "b.onnx")
    qa, qb = read_manifest(a.path)["quantization"], read_manifest(b.path)["quantization"]
    assert qa["qdq_nodes"] == qb["qdq_nodes"] and qa["scales"] == qb["scales"]
    assert qb["high_precision_fp16"]["kept_fp32"] == []
    x = np.random.default_rng(2).normal(0, 1, (8, 3, 32, 32)).astype(np.float32)
    ra, rb = _run(a.path, x), _run(b.path, x)
    cos = (ra * rb).sum(1) / np.linalg.norm(ra, axis=1) / np.linalg.norm(rb, axis=1)
    assert cos.min() > 0.99
