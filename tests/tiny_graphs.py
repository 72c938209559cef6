"""Small hand-built ONNX graphs for the precision tests, with the manifest ``rtdeploy export`` would write."""

from __future__ import annotations

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
