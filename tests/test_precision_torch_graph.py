"""The torch form of an ONNX graph (used by block reconstruction) computes what the Q/DQ model means."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rtdeploy.precision.int8.layers import weighted_layers
from rtdeploy.precision.int8.qdq import insert_qdq, plan_qdq, quantize_weight
from rtdeploy.precision.int8.torch_graph import TorchGraph, Unsupported, dequantized_weights, unit_scales


def _residual_net(seed: int = 0):
    """conv-relu stem, one option-A residual block (Slice/Slice/Pad shortcut), pool, fc: every op the
    CIFAR ResNets use, plus MaxPool and a constant-folded Cast."""
    rng = np.random.default_rng(seed)
    inits = {
        "w0": rng.normal(0, 0.3, (4, 3, 3, 3)), "b0": rng.normal(0, 0.1, 4),
        "w1": rng.normal(0, 0.3, (8, 4, 3, 3)), "b1": rng.normal(0, 0.1, 8),
        "w2": rng.normal(0, 0.3, (8, 8, 3, 3)), "b2": rng.normal(0, 0.1, 8),
        "fc": rng.normal(0, 0.5, (5, 8)), "fcb": np.zeros(5),
    }
    tensors = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()]
    ints = {"s0": [0], "e0": [2**62], "ax": [2], "st": [2], "ax3": [3], "pads": [0, 2, 0, 0, 0, 2, 0, 0]}
    tensors += [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in ints.items()]
    nodes = [
        helper.make_node("Conv", ["input", "w0", "b0"], ["c0"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
        helper.make_node("MaxPool", ["r0"], ["m0"], name="pool0", kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]),
        helper.make_node("Conv", ["m0", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Slice", ["m0", "s0", "e0", "ax", "st"], ["sl1"], name="slice_h"),
        helper.make_node("Slice", ["sl1", "s0", "e0", "ax3", "st"], ["sl2"], name="slice_w"),
        helper.make_node("Cast", ["pads"], ["pads64"], name="cast_pads", to=TensorProto.INT64),
        helper.make_node("Pad", ["sl2", "pads64"], ["short"], name="pad"),
        helper.make_node("Add", ["c2", "short"], ["sum"], name="add"),
        helper.make_node("Relu", ["sum"], ["out"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["out"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc", "fcb"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "res", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], tensors)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _ort(model, x):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_fp32_graph_matches_onnxruntime():
    import torch

    model = _residual_net()
    x = np.random.default_rng(1).normal(size=(4, 3, 8, 8)).astype(np.float32)
    out = TorchGraph(model).forward(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, _ort(model, x), rtol=1e-5, atol=1e-5)


def test_fake_quantized_graph_is_the_qdq_model_exactly():
    # The Q/DQ model run by onnxruntime with its optimizations off is the reference (float convolutions
    # of dequantized values, as TensorRT's int8 kernels compute them up to float summation order).
    import torch

    model = _residual_net()
    plan = plan_qdq(model)
    scales = {t: 0.03 + 0.01 * i for i, t in enumerate(plan.observed())}
    layers = weighted_layers(model, plan.units)
    nearest = {l.unit.weight: quantize_weight(l.weight, l.unit.axis) for l in layers.values()}
    x = np.random.default_rng(2).normal(size=(4, 3, 8, 8)).astype(np.float32)
    expected = _ort(insert_qdq(model, plan, scales), x)
    out = TorchGraph(model).forward(torch.from_numpy(x), unit_scales(plan, scales), dequantized_weights(layers, nearest)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(expected - _ort(model, x)).max() > 1e-3, "the quantization must change the output for this test to mean anything"


def test_an_op_without_a_torch_form_is_refused_by_name():
    model = _residual_net()
    node = next(n for n in model.graph.node if n.name == "relu1")
    node.op_type = "Softsign"
    with pytest.raises(Unsupported, match="Softsign"):
        TorchGraph(model)


def test_a_constant_of_shape_is_folded_as_onnxruntime_computes_it():
    """A head exported with a dynamic batch folds ConstantOfShape (onnx Operators.md: ConstantOfShape
    fills the given shape with its `value` attribute); here it makes the classifier's zero bias."""
    import torch

    model = _residual_net()
    bias = next(i for i in model.graph.initializer if i.name == "fcb")
    model.graph.initializer.remove(bias)
    model.graph.initializer.append(numpy_helper.from_array(np.array([5], np.int64), "fcb_shape"))
    model.graph.node.insert(0, helper.make_node("ConstantOfShape", ["fcb_shape"], ["fcb"], name="fcb_fill",
                                                value=numpy_helper.from_array(np.array([0.25], np.float32))))
    x = np.random.default_rng(2).normal(size=(2, 3, 8, 8)).astype(np.float32)
    out = TorchGraph(model).forward(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, _ort(model, x), rtol=1e-5, atol=1e-5)


def test_a_constant_folded_op_without_a_torch_form_is_refused_by_name():
    """Folding runs through the same op table as the steps: an unknown op with only constant inputs
    is refused (and block reconstruction falls back), never a KeyError out of the quantize stage."""
    model = _residual_net()
    next(n for n in model.graph.node if n.name == "cast_pads").op_type = "Softsign"
    with pytest.raises(Unsupported, match="Softsign"):
        TorchGraph(model)
