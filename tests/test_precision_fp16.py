"""FP16 conversion: types, I/O options, closeness to FP32, and the overflow guard."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from rtdeploy import api
from tiny_graphs import huge_activation_model, write_fp32_artifact
from rtdeploy.artifacts import read_manifest
from rtdeploy.precision.fp16 import convert_fp16, guard_nodes

def _run(model, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed_type = np.float16 if "float16" in sess.get_inputs()[0].type else np.float32
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(feed_type)})[0]


def _amax(model, x) -> dict[str, float]:
    from rtdeploy.precision.fp16 import float_tensors
    from rtdeploy.precision.int8.collect import collect_stats

    return {t: s.amax for t, s in collect_stats(model, float_tensors(model), [x], histogram=False).items()}


def test_guard_keeps_the_overflowing_ops_in_fp32_and_the_output_finite():
    model = huge_activation_model()
    x = np.random.default_rng(1).normal(0, 1, (4, 3, 8, 8)).astype(np.float32)
    keep = guard_nodes(model, _amax(model, x))
    # m and r exceed the limit: the ops writing or reading them stay FP32; the rest is FP16.
    assert set(keep) == {"scale_up", "relu", "scale_down"}
    assert "m reaches" in keep["scale_up"]
    guarded, report = convert_fp16(model, keep)
    unguarded, _ = convert_fp16(model, {})
    ref = _run(model, x)
    out = _run(guarded, x)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, rtol=2e-2, atol=2e-2)
    assert report.casts >= 4  # in/out of the model, and around the FP32 island
    # The overflowing tensor is float32 in the guarded graph and float16 (past 65,504) without it.
    # (onnxruntime's CPU provider may run FP16 ops through float32 kernels and drop the casts in
    # between, so it need not show the overflow a GPU hits; the types say it.)
    assert _elem_type(guarded, "m") == TensorProto.FLOAT
    assert _elem_type(unguarded, "m") == TensorProto.FLOAT16
    assert _amax(model, x)["m"] > 65504


def _elem_type(model, tensor: str) -> int:
    inferred = onnx.shape_inference.infer_shapes(model)
    return next(v.type.tensor_type.elem_type for v in inferred.graph.value_info if v.name == tensor)


def test_guarded_graph_types():
    model = huge_activation_model()
    x = np.random.default_rng(1).normal(0, 1, (2, 3, 8, 8)).astype(np.float32)
    keep = guard_nodes(model, _amax(model, x))
    m16, _ = convert_fp16(model, keep)
    inits = {i.name: i.data_type for i in m16.graph.initializer}
    assert inits["w"] == TensorProto.FLOAT16 and inits["fc"] == TensorProto.FLOAT16
    assert inits["big"] == TensorProto.FLOAT and inits["small"] == TensorProto.FLOAT
    assert m16.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert m16.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    onnx.checker.check_model(m16, full_check=True)


@pytest.mark.parametrize("fp16_io", [False, True])
def test_resnet_fp16_close_to_fp32(exported, tmp_path, fp16_io):
    model = onnx.load(str(exported(20).path))
    from rtdeploy.precision.graph import name_nodes

    name_nodes(model)
    m16, report = convert_fp16(model, {}, fp16_io=fp16_io)
    onnx.checker.check_model(m16, full_check=True)
    io_type = TensorProto.FLOAT16 if fp16_io else TensorProto.FLOAT
    assert m16.graph.input[0].type.tensor_type.elem_type == io_type
    assert m16.graph.output[0].type.tensor_type.elem_type == io_type
    assert report.casts == (0 if fp16_io else 2)
    conv_weights = [i for i in m16.graph.initializer if len(i.dims) == 4]
    assert conv_weights and all(i.data_type == TensorProto.FLOAT16 for i in conv_weights)
    x = np.random.default_rng(2).normal(0, 1, (8, 3, 32, 32)).astype(np.float32)
    ref, out = _run(model, x), _run(m16, x).astype(np.float32)
    assert np.abs(out - ref).max() < 0.05 * np.abs(ref).max()
    assert not np.array_equal(out, ref)


def test_api_fp16_writes_model_manifest_and_report(tmp_path):
    fp32 = write_fp32_artifact(huge_activation_model(), tmp_path / "huge.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(3).normal(0, 1, (16, 3, 8, 8)).astype(np.float32))
    result = api.quantize(fp32, fp16=True, calib_dir=calib, stats_cache=False)
    assert result.path == tmp_path / "huge.fp16.onnx" and result.path.is_file()
    m = read_manifest(result.path)
    assert m["kind"] == "onnx-fp16" and m["precision"] == "fp16"
    assert m["parent"]["sha256"] == read_manifest(fp32)["sha256"]
    assert {k["node"] for k in m["fp16"]["kept_fp32"]} == {"scale_up", "relu", "scale_down"}
    assert m["fp16"]["max_abs_activation"] > 65504
    assert m["calibration"]["images"] == 16
    assert result.report["kept_fp32"] == [k["node"] for k in m["fp16"]["kept_fp32"]]
    json.dumps(m)


def test_fp16_of_fp16_model_is_refused(tmp_path):
    from rtdeploy.errors import PrecisionError

    fp32 = write_fp32_artifact(huge_activation_model(), tmp_path / "huge.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(3).normal(0, 1, (4, 3, 8, 8)).astype(np.float32))
    first = api.quantize(fp32, fp16=True, calib_dir=calib, stats_cache=False)
    with pytest.raises(PrecisionError, match="already an FP16 model"):
        api.quantize(first.path, fp16=True, calib_dir=calib, stats_cache=False, output=tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()
