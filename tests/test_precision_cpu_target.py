"""INT8 for onnxruntime's CPU kernels (``--target onnxruntime-cpu``): the graph's structure, the integer
ops onnxruntime really fuses it into, the int16-saturation guard, and the option rules."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from rtdeploy import api
from rtdeploy.artifacts import read_manifest
from rtdeploy.cli.main import _register, cli
from rtdeploy.errors import PrecisionError
from rtdeploy.precision.graph import initializers, producers
from rtdeploy.precision.int8.cpu_target import WEIGHT_LEVELS, insert_cpu_qdq, plan_cpu


@pytest.fixture(autouse=True)
def _private_stats_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RTDEPLOY_CACHE_DIR", str(tmp_path_factory.mktemp("stats-cache")))


def _npy(folder: Path, n: int = 16, size: int = 32) -> Path:
    path = folder / "calib.npy"
    np.save(path, np.random.default_rng(0).normal(0, 1, (n, 3, size, size)).astype(np.float32))
    return path


def _from_relu(tensor: str, prod: dict) -> bool:
    node = prod.get(tensor)
    while node is not None and node.op_type in ("Slice", "Pad", "MaxPool", "Flatten", "DequantizeLinear", "QuantizeLinear"):
        node = prod.get(node.input[0])
    return node is not None and node.op_type == "Relu"


def _session(model_or_path, *, optimized_path: Path | None = None, optimize: bool = True):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if optimized_path is not None:
        opts.optimized_model_filepath = str(optimized_path)
    data = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def r20_cpu(exported, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cpu-target")
    fp32 = exported(20)
    result = api.quantize(fp32.path, int8=True, calib_dir=_npy(folder), method="max", target="onnxruntime-cpu",
                          output=folder / "r20.cpu.onnx")
    return fp32, result


def test_cpu_target_graph_uint8_activations_with_zero_points_int8_per_channel_weights(r20_cpu):
    fp32, result = r20_cpu
    model = onnx.load(str(result.path))
    inits = {k: numpy_helper.to_array(v) for k, v in initializers(model.graph).items()}
    prod = producers(model.graph)
    quants = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quants
    for q in quants:
        zp = inits[q.input[2]]
        assert zp.dtype == np.uint8 and zp.shape == ()
        # ReLU outputs (also through the option-A shortcut's Slice/Pad) use the whole 0..255 range;
        # the (signed) image and conv outputs sit around 128.
        assert int(zp) == (0 if _from_relu(q.input[0], prod) else 128), q.name
    assert int(inits[next(q for q in quants if q.input[0] == "input").input[2]]) == 128
    conv_out = {n.output[0] for n in model.graph.node if n.op_type == "Conv"}
    assert any(q.input[0] in conv_out for q in quants), "conv outputs feeding a residual Add are quantized (QLinearAdd needs them)"
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 19
    for conv in convs:
        w_dq, b_dq = prod[conv.input[1]], prod[conv.input[2]] if len(conv.input) > 2 else None
        assert prod[conv.input[0]].op_type == "DequantizeLinear"
        q, scale, zp = (inits[t] for t in w_dq.input)
        assert q.dtype == np.int8 and np.abs(q).max() <= WEIGHT_LEVELS and zp.dtype == np.int8 and not zp.any()
        assert scale.shape == (q.shape[0],) and next(a.i for a in w_dq.attribute if a.name == "axis") == 0
        if b_dq is not None:
            assert inits[b_dq.input[0]].dtype == np.int32
    m = read_manifest(result.path)
    assert m["quantization"]["target"] == "onnxruntime-cpu" and m["quantization"]["high_precision"] == "fp32"
    assert set(m["quantization"]["zero_points"].values()) == {0, 128}


def test_onnxruntime_fuses_every_layer_into_integer_ops(r20_cpu, tmp_path):
    fp32, result = r20_cpu
    _session(result.path, optimized_path=tmp_path / "opt.onnx")
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    original = Counter(n.op_type for n in onnx.load(str(fp32.path)).graph.node)
    assert ops["QLinearConv"] == original["Conv"] == 19
    assert ops["QLinearAdd"] == original["Add"] == 9
    assert ops["QGemm"] == original["Gemm"] == 1
    assert ops["QLinearGlobalAveragePool"] == 1
    assert not {"Conv", "FusedConv", "Add", "Gemm", "FusedGemm", "GlobalAveragePool"} & set(ops), ops


def test_the_tensorrt_placement_is_not_fused_by_onnxruntime(r20_cpu, tmp_path):
    """Why the CPU target exists: input-only Q/DQ leaves onnxruntime float convolutions."""
    fp32, _ = r20_cpu
    trt = api.quantize(fp32.path, int8=True, calib_dir=_npy(tmp_path), method="max", output=tmp_path / "r20.trt.onnx")
    _session(trt.path, optimized_path=tmp_path / "opt.onnx")
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    assert ops["QLinearConv"] == 0 and ops["QLinearAdd"] == 0


# What onnxruntime's optimizer leaves outside its integer kernels: the graph input's QuantizeLinear,
# layout Transposes, pass-through ops and any DequantizeLinear/QuantizeLinear it could not fuse.
INTEGER_KERNELS = {"QLinearConv", "QLinearAdd", "QGemm", "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearMatMul"}


@pytest.mark.slow
def test_fuses_at_least_as_well_as_onnxruntimes_own_quantizer(exported, tmp_path):
    """The speed claim of the CPU target against onnxruntime's quantize_static (its CPU defaults: QDQ,
    uint8 activations, int8 per-channel weights) rests on the optimized graphs: ResNet-50's
    bottlenecks, downsample shortcuts and max-pool must become at least as many integer kernels,
    with no more ops left outside them (benchmarks/int8_cpu_target.py times the two)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    fp32 = exported(50, image_size=64)
    ours = api.quantize(fp32.path, int8=True, calib_dir=_npy(tmp_path, 4, 64), method="max", target="onnxruntime-cpu",
                        output=tmp_path / "r50.cpu.onnx")
    images = np.load(tmp_path / "calib.npy")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.left = [images]

        def get_next(self):
            return {"input": self.left.pop()} if self.left else None

    theirs = tmp_path / "r50.ort.onnx"
    quantize_static(str(fp32.path), str(theirs), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    ops = {}
    for name, path in (("ours", ours.path), ("theirs", theirs)):
        _session(path, optimized_path=tmp_path / f"{name}.opt.onnx")
        ops[name] = Counter(n.op_type for n in onnx.load(str(tmp_path / f"{name}.opt.onnx")).graph.node)
    assert ops["theirs"]["QLinearConv"] == 53 and ops["theirs"]["QLinearAdd"] == 16, ops["theirs"]  # the reference fuses fully
    for kernel in INTEGER_KERNELS:
        assert ops["ours"][kernel] >= ops["theirs"][kernel], (kernel, ops)
    outside = {k: sum(v for op, v in c.items() if op not in INTEGER_KERNELS) for k, c in ops.items()}
    assert outside["ours"] <= outside["theirs"], ops
    assert not {"Conv", "FusedConv", "Add", "Gemm", "FusedGemm", "Relu"} & set(ops["ours"]), ops["ours"]


def test_integer_kernels_match_the_dequantized_graph(r20_cpu):
    """The fused integer graph computes what the Q/DQ graph means (simulated with optimizations off)."""
    _, result = r20_cpu
    x = np.random.default_rng(5).normal(0, 1, (8, 3, 32, 32)).astype(np.float32)
    fused = _session(result.path).run(None, {"input": x})[0]
    simulated = _session(result.path, optimize=False).run(None, {"input": x})[0]
    cos = (fused * simulated).sum(1) / np.linalg.norm(fused, axis=1) / np.linalg.norm(simulated, axis=1)
    assert cos.min() > 0.99


def _saturating_model():
    """input (16 channels, all at the calibrated maximum) -> Conv(all weights equal) -> Relu -> 1x1 Conv.

    With every uint8 input at 255 and every int8 weight at the top of its range, each pair of
    products that an AVX2 u8s8 kernel adds in int16 (VPMADDUBSW) is 2 x 255 x w_q: 64,770 for
    w_q = 127 (saturates at 32,767), 32,130 for w_q = 63 (exact).
    """
    w1 = numpy_helper.from_array(np.full((8, 16, 3, 3), 0.01, np.float32), "w1")
    w2 = numpy_helper.from_array(np.full((1, 8, 1, 1), 0.1, np.float32), "w2")
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c1"], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["out"], name="conv2")]
    graph = helper.make_graph(nodes, "sat", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16, 3, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 1, 1, 1])], [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_weights_stay_in_the_range_where_avx2_integer_sums_cannot_saturate():
    model = _saturating_model()
    plan = plan_cpu(model)
    qmodel = insert_cpu_qdq(model, plan, {"input": 1.0, "r1": 1.44})
    x = np.ones((1, 16, 3, 3), np.float32)
    fused = _session(qmodel).run(None, {"input": x})[0].item()
    simulated = _session(qmodel, optimize=False).run(None, {"input": x})[0].item()
    exact = 8 * 0.1 * (144 * 0.01)
    assert simulated == pytest.approx(exact, rel=0.02)
    assert fused == pytest.approx(simulated, rel=0.02)


def test_plan_counts_on_resnet20(exported):
    model = onnx.load(str(exported(20).path))
    plan = plan_cpu(model)
    assert len(plan.weighted) == 20 and len(plan.layers) == 19 + 1 + 9 + 1  # conv, gemm, add, pool
    by_tensor = {t.tensor: t for t in plan.tensors}
    assert not by_tensor["input"].non_negative
    assert sum(t.non_negative for t in plan.tensors) >= 19


def test_default_target_output_is_byte_identical_to_explicit_tensorrt(exported, tmp_path):
    fp32 = exported(20).path
    calib = _npy(tmp_path)
    a = api.quantize(fp32, int8=True, calib_dir=calib, method="max", output=tmp_path / "a.onnx")
    b = api.quantize(fp32, int8=True, calib_dir=calib, method="max", target="tensorrt", high_precision="fp32",
                     output=tmp_path / "b.onnx")
    assert a.path.read_bytes() == b.path.read_bytes()
    assert read_manifest(a.path)["quantization"]["target"] == "tensorrt"


@pytest.mark.parametrize("kwargs, words", [
    ({"target": "openvino"}, "accepted: tensorrt, onnxruntime-cpu"),
    ({"high_precision": "bf16"}, "accepted: fp32, fp16"),
    # The library names options by their field; the CLI shows the flag of the same message.
    ({"target": "onnxruntime-cpu", "keep_fp": 3}, "keep_fp apply to target tensorrt only"),
    ({"target": "onnxruntime-cpu", "high_precision": "fp16"}, "high_precision fp16 apply to target tensorrt only"),
    ({"int8": False, "fp16": True, "target": "onnxruntime-cpu"}, "apply to int8 only"),
    ({"high_precision": "fp16", "from_trt_cache": "x.calib"}, "cannot start from from_trt_cache"),
])
def test_bad_target_options_fail_before_any_work(tmp_path, kwargs, words):
    kw = {"int8": True, **kwargs}
    with pytest.raises(PrecisionError, match=words.replace("-", r"\-").replace(".", r"\.")):
        api.quantize(tmp_path / "missing.onnx", **kw)  # the model is not even read


def test_cli_target_choice_is_checked(exported, tmp_path):
    _register()
    res = CliRunner().invoke(cli, ["quantize", str(exported(20).path), "--int8", "--target", "onnxruntime-cpu", "--keep-fp", "2",
                                   "-o", str(tmp_path / "x.onnx")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "apply to --target tensorrt only" in res.output and not (tmp_path / "x.onnx").exists()
