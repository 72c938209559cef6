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


def _trunk(input_name: str, batch, size: int, classes: int):
    """input -> Conv(4, 3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> logits: nodes, initializers, input, logits name."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "conv_w"),
             numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "conv_b"),
             numpy_helper.from_array(rng.normal(0, 0.5, (classes, 4)).astype(np.float32), "fc_w"),
             numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b")]
    nodes = [helper.make_node("Conv", [input_name, "conv_w", "conv_b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1)]
    inp = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch if batch else "N", 3, size, size])
    return nodes, inits, inp


def tiny_convnet(*, batch: int | None = None, opset: int = 17, size: int = 8, classes: int = 10):
    """A classifier small enough to quantize in a fraction of a second: input (N, 3, size, size) ->
    Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> logits (N, classes); ``batch`` fixes N."""
    nodes, inits, inp = _trunk("input", batch, size, classes)
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch if batch else "N", classes])
    graph = helper.make_graph(nodes, "tiny", [inp], [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


# Names a foreign exporter may well write: quotes, a backslash, spaces, a slash, non-ASCII.
ODD_INPUT = 'image "rgb"'
ODD_OUTPUTS = ("logits", "class id\\top1", "confident/été")


def foreign_multi_output(*, odd_names: bool = True, label: bool = True, confident: bool = True,
                         extra_types: tuple[int, ...] = (), scalar: bool = False, opset: int = 17):
    """An imported classifier with more than logits: its top-1 ``label`` (int64, shape (N,)) and
    whether it is ``confident`` (bool, (N,)); ``odd_names`` gives every tensor a name with quotes, a
    backslash, spaces or non-ASCII (:data:`ODD_INPUT`, :data:`ODD_OUTPUTS`); ``extra_types`` adds one
    (N, 10) output cast to each ONNX type given, ``scalar`` an output of no dimensions (the batch's largest logit)."""
    input_name, (logits, label_name, confident_name) = (ODD_INPUT, ODD_OUTPUTS) if odd_names else ("input", ("logits", "label", "confident"))
    nodes, inits, inp = _trunk(input_name, None, 8, 10)
    outputs = [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["N", 10])]
    if logits != "logits":
        nodes.append(helper.make_node("Identity", ["logits"], [logits], name="logits_out"))
    if label:
        nodes.append(helper.make_node("ArgMax", ["logits"], [label_name], name="argmax", axis=1, keepdims=0))
        outputs.append(helper.make_tensor_value_info(label_name, TensorProto.INT64, ["N"]))
    if confident:
        inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
        if opset >= 18:  # ReduceMax takes its axes as an input from opset 18
            inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
            nodes.append(helper.make_node("ReduceMax", ["logits", "axis1"], ["top"], name="top", keepdims=0))
        else:
            nodes.append(helper.make_node("ReduceMax", ["logits"], ["top"], name="top", axes=[1], keepdims=0))
        nodes.append(helper.make_node("Greater", ["top", "zero"], [confident_name], name="confident"))
        outputs.append(helper.make_tensor_value_info(confident_name, TensorProto.BOOL, ["N"]))
    for t in extra_types:
        name = f"as_{TensorProto.DataType.Name(t).lower()}"
        nodes.append(helper.make_node("Cast", ["logits"], [name], name=f"cast_{t}", to=t))
        outputs.append(helper.make_tensor_value_info(name, t, ["N", 10]))
    if scalar:
        nodes.append(helper.make_node("ReduceMax", ["logits"], ["batch_max"], name="batch_max", keepdims=0))
        outputs.append(helper.make_tensor_value_info("batch_max", TensorProto.FLOAT, []))
    graph = helper.make_graph(nodes, "foreign", [inp], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def qdq_classifier(*, opset: int = 17, zero_point: int = 0, zero_type: int = TensorProto.INT8,
                   scale_type: int = TensorProto.FLOAT, with_zero_point: bool = True):
    """A hand-made Q/DQ graph (input quantized, weights int8) with the Q/DQ form chosen: zero point
    value and type, scale type, or no zero point at all; for TensorRT's importer rules."""
    from onnx import helper as h

    nodes, inits, inp = _trunk("input", None, 8, 10)
    np_scale = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16}[scale_type]
    np_zero = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8}[zero_type]
    rng = np.random.default_rng(2)
    inits += [numpy_helper.from_array(np.array(0.02, np_scale), "s"), numpy_helper.from_array(np.array(zero_point, np_zero), "z"),
              numpy_helper.from_array(rng.integers(-100, 100, (4, 3, 3, 3)).astype(np.int8), "conv_wq"),
              numpy_helper.from_array(np.full(4, 0.01, np_scale), "ws"), numpy_helper.from_array(np.zeros(4, np.int8), "wz")]
    zp = ["z"] if with_zero_point else []
    half = scale_type == TensorProto.FLOAT16  # Q/DQ read and write the scale's type (opset 19): cast around them
    x = "input_h" if half else "input"
    qdq = [h.make_node("Cast", ["input"], ["input_h"], name="to_half", to=TensorProto.FLOAT16)] if half else []
    qdq += [h.make_node("QuantizeLinear", [x, "s", *zp], ["q"], name="input_q"),
            h.make_node("DequantizeLinear", ["q", "s", *zp], ["dq"], name="input_dq"),
            h.make_node("DequantizeLinear", ["conv_wq", "ws", "wz"], ["conv_wdq"], name="conv_w_dq", axis=0)]
    if half:
        qdq += [h.make_node("Cast", ["dq"], ["dq_f"], name="dq_to_float", to=TensorProto.FLOAT),
                h.make_node("Cast", ["conv_wdq"], ["conv_wdq_f"], name="w_to_float", to=TensorProto.FLOAT)]
    nodes[0] = h.make_node("Conv", ["dq_f" if half else "dq", "conv_wdq_f" if half else "conv_wdq", "conv_b"], ["c"], name="conv",
                           pads=[1, 1, 1, 1])
    inits = [i for i in inits if i.name != "conv_w" and (with_zero_point or i.name != "z")]
    out = h.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    graph = h.make_graph(qdq + nodes, "qdq", [inp], [out], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], ir_version=8)


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
