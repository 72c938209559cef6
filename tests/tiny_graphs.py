"""Small hand-built ONNX graphs for the precision and import tests (with the manifest ``rtdeploy export``
would write, where a test needs one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from manifest_fakes import write_onnx_manifest
from rtdeploy.models import model_meta

BIG = 3.0e4  # fits FP16 itself, but pushes the activation it scales past 65,504


def huge_activation_model(*, bias: float = 0.0, dead_channel: bool = False):
    """input -> Conv -> Mul(3e4) -> Relu -> Mul(1/3e4) -> GlobalAveragePool -> Flatten -> Gemm.

    The Mul/Relu/Mul in the middle exceed FP16's range. ``bias`` fills the conv bias; with
    ``dead_channel`` one conv output channel has weights of 1e-7 (its int8 scale, ~8e-10, is not a
    normal float16)."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    if dead_channel:
        w[2] = 1e-7
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.full(4, bias, np.float32), "b"),
             numpy_helper.from_array(np.array(BIG, np.float32), "big"), numpy_helper.from_array(np.array(1 / BIG, np.float32), "small"),
             numpy_helper.from_array(rng.normal(0, 0.5, (10, 4)).astype(np.float32), "fc"),
             numpy_helper.from_array(np.zeros(10, np.float32), "fcb")]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "big"], ["m"], name="scale_up"),
        helper.make_node("Relu", ["m"], ["r"], name="relu"),
        helper.make_node("Mul", ["r", "small"], ["s"], name="scale_down"),
        helper.make_node("GlobalAveragePool", ["s"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "huge", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def write_fp32_artifact(model, path, image_size: int = 8):
    """``model`` saved at ``path`` with the complete manifest export writes (a CIFAR ResNet-20's metadata)."""
    onnx.save(model, str(path))
    write_onnx_manifest(path, model_meta(20, image_size=image_size).to_dict())
    return path


def classifier(opset: int = 13, *, batch: int | str = "N", classes: int = 10, channels: int = 3, size: int = 8,
               in_type=None, extra_input: bool = False, rank: int = 4, extra_node=None):
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm: a tiny image classifier."""
    rng = np.random.default_rng(0)
    shape = [batch, channels, size, size][:rank] if rank <= 4 else [batch, channels, size, size, 1]
    inputs = [helper.make_tensor_value_info("pixels", in_type or TensorProto.FLOAT, shape)]
    nodes = []
    first = "pixels"
    if in_type is not None:
        nodes.append(helper.make_node("Cast", ["pixels"], ["as_float"], to=TensorProto.FLOAT))
        first = "as_float"
    if extra_input:
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [batch, channels, size, size]))
        nodes.append(helper.make_node("Mul", ["pixels", "mask"], ["masked"]))
        first = "masked"
    inits = [numpy_helper.from_array(rng.normal(size=(8, channels, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(size=(classes, 8)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(size=(classes,)).astype(np.float32), "b2")]
    if rank == 4:
        nodes += [helper.make_node("Conv", [first, "w1", "b1"], ["c"], pads=[1, 1, 1, 1])]
        last = "c"
        if extra_node is not None:
            nodes.append(extra_node)
            last = extra_node.output[0]
        nodes += [helper.make_node("Relu", [last], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["g"]),
                  helper.make_node("Flatten", ["g"], ["f"])]
        head_in = "f"
    else:
        inits[2] = numpy_helper.from_array(rng.normal(size=(classes, size)).astype(np.float32), "w2")
        head_in = first
    nodes.append(helper.make_node("Gemm", [head_in, "w2", "b2"], ["probs"], transB=1))
    out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, classes])
    graph = helper.make_graph(nodes, "foreign", inputs, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def save(model, path: Path) -> Path:
    onnx.save_model(model, str(path))
    return path


def wide_activation_model(*, size: int = 1024, copies: int = 300_000, batch: int | str = "N"):
    """A tiny graph whose declared middle tensor is huge: the input tiled ``copies`` times along the
    channels (``1024x1024``, 300,000 copies: 1.2 TB per sample), averaged back to one channel, pooled,
    and a Gemm to 10 classes. Its weights are a few bytes, so only the shapes tell the size."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array([1, copies, 1, 1], np.int64), "repeats"),
             numpy_helper.from_array(rng.normal(size=(10, 1)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(10, np.float32), "b")]
    nodes = [helper.make_node("Tile", ["pixels", "repeats"], ["tiled"]),
             helper.make_node("ReduceMean", ["tiled"], ["mean"], axes=[1], keepdims=1),
             helper.make_node("GlobalAveragePool", ["mean"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["probs"], transB=1)]
    graph = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [batch, 1, size, size])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.checker.check_model(model)
    return model


def custom_domain_classifier():
    """:func:`classifier` with its Relu replaced by ``com.example.MyRelu``: valid ONNX (a custom
    domain is declared), which onnxruntime cannot run without that domain's operator library."""
    model = classifier()
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type, relu.domain = "MyRelu", "com.example"
    onnx.checker.check_model(model)
    return model
