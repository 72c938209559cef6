"""``quantize --int8 --high-precision fp16``: the float parts of a TensorRT Q/DQ graph in FP16.

A strongly typed TensorRT network (the only INT8 mode of TensorRT 11, the default for Q/DQ on 10.x)
runs every tensor in the type the ONNX graph gives it. With FP32 float parts, every layer that is
not quantized (a kept ``--keep-fp`` layer, the conv-branch input of a fused residual Add, pooling,
the classifier's bias) runs in FP32, while TensorRT 8.6's weakly typed builder would pick FP16
there. NVIDIA's ModelOpt calls the type of those parts the *high-precision* type; this writes them
in FP16:

- every float initializer (biases, Q/DQ scales) becomes float16, every float node computes in
  float16, so DequantizeLinear outputs float16 and QuantizeLinear reads float16 (opset 19: Q/DQ with
  float16 scales; the model's opset is raised to 19 when lower);
- the FP16 stage's overflow guard still applies: an op whose input or output exceeded
  ``65504 / 4`` on the calibration images stays FP32, and so do the Q/DQ nodes that feed it (so a
  kept layer reads its DequantizeLinear directly, without a Cast between);
- scales below float16's smallest normal number (6.1e-5), which would lose precision or flush to
  zero, are raised to it (near-dead weight channels, re-quantized with the raised scale: at most
  3.1e-5 absolute error per weight);
- inputs and outputs stay float32 with a Cast at each end.
"""

from __future__ import annotations

import logging

import numpy as np

from rtdeploy.errors import PrecisionError

log = logging.getLogger(__name__)

HIGH_PRECISION_OPSET = 19  # QuantizeLinear/DequantizeLinear with float16 scales
FP16_MIN_NORMAL = float(np.finfo(np.float16).tiny)


def measure_ranges(parent, split, cache_dir, progress: bool) -> tuple[dict[str, float], str]:
    """The largest |x| of every float activation of ``parent`` on the statistics part of ``split``
    (the same statistics, and cache entry, as ``quantize --fp16``).

    Raises:
        PrecisionError: an activation is already NaN/Inf in FP32.
    """
    from rtdeploy.precision.fp16 import float_tensors
    from rtdeploy.precision.stats import gather_stats

    stats, cache_state = gather_stats(parent, float_tensors(parent.model), split, None, cache_dir, progress)
    amax = {t: float(s.amax) for t, s in stats.items()}
    bad = [t for t, a in amax.items() if not np.isfinite(a)]
    if bad:
        raise PrecisionError(f"tensor {bad[0]} reached NaN/Inf on the calibration data in FP32 already; check the inputs and the model")
    return amax, cache_state


def to_fp16_float_parts(qmodel, amax: dict[str, float]):
    """``qmodel`` (a Q/DQ model with FP32 float parts) with its float parts in FP16.

    Args:
        qmodel: from :func:`rtdeploy.precision.int8.qdq.insert_qdq` (nodes named).
        amax: largest |x| per activation of the FP32 parent (:func:`measure_ranges`).

    Returns:
        ``(model, info)``; ``info`` is the manifest's ``high_precision`` entry (kept nodes and why,
        casts, opset).
    """
    from rtdeploy.precision.fp16 import DEFAULT_SAFETY, FP16_MAX, convert_fp16, guard_nodes
    from rtdeploy.precision.graph import opset_of

    import copy

    qmodel = copy.deepcopy(qmodel)
    raised = _lift_tiny_scales(qmodel)
    ranges = _with_qdq_ranges(qmodel, amax)
    keep = guard_nodes(qmodel, ranges, DEFAULT_SAFETY)
    _keep_qdq_feeding(qmodel, keep)
    model16, report = convert_fp16(qmodel, keep, fp16_io=False)
    opset = max(opset_of(model16), HIGH_PRECISION_OPSET)
    for imp in model16.opset_import:
        if imp.domain in ("", "ai.onnx"):
            imp.version = opset
    if keep:
        log.warning("kept %d node(s) of the Q/DQ graph in FP32: %s", len(keep), ", ".join(keep))
    info = {
        "type": "fp16",
        "limit": FP16_MAX / DEFAULT_SAFETY,
        "kept_fp32": [{"node": n, "reason": r} for n, r in keep.items()],
        "casts": report.casts,
        "scales_raised_to_fp16_normal": raised,
        "opset": opset,
    }
    return model16, info


def _with_qdq_ranges(qmodel, amax: dict[str, float]) -> dict[str, float]:
    """``amax`` plus the range of every DequantizeLinear output: that of the tensor its
    QuantizeLinear read, or of the dequantized weights."""
    from onnx import numpy_helper

    from rtdeploy.precision.graph import initializers, producers

    g = qmodel.graph
    prod, inits = producers(g), initializers(g)
    ranges = dict(amax)
    for node in g.node:
        if node.op_type != "DequantizeLinear":
            continue
        src = prod.get(node.input[0])
        if src is not None and src.op_type == "QuantizeLinear" and src.input[0] in ranges:
            ranges[node.output[0]] = ranges[src.input[0]]
        elif node.input[0] in inits and node.input[1] in inits:
            q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
            s = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            if s.ndim == 1 and q.ndim:
                shape[axis] = -1
            ranges[node.output[0]] = float(np.abs(q * s.reshape(shape)).max(initial=0.0))
    return ranges


def _lift_tiny_scales(qmodel) -> int:
    """Raise Q/DQ scales below float16's smallest normal number to it, in place; returns how many
    values were raised.

    Such scales belong to near-dead weight channels (max |w| < 127 x 6.1e-5 = 0.0078) or nearly
    constant activations. As float16 they would lose precision or flush to zero (a zero scale
    zeroes the channel). The weights of a raised channel are re-quantized with the new scale,
    which costs at most 3.1e-5 of absolute error per weight and cannot clip.
    """
    from onnx import numpy_helper

    from rtdeploy.precision.graph import initializers

    g = qmodel.graph
    inits = initializers(g)
    raised: dict[str, np.ndarray] = {}
    for node in g.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.input[1] not in inits or node.input[1] in raised:
            continue
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        low = (scale > 0) & (scale < FP16_MIN_NORMAL)
        if not low.any():
            continue
        new = np.where(low, np.float32(FP16_MIN_NORMAL), scale).astype(np.float32)
        raised[node.input[1]] = low
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            _requantize(inits[node.input[0]], node, scale, new)
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(new, node.input[1]))
    return int(sum(int(m.sum()) for m in raised.values()))


def _requantize(weight_init, dq_node, old: np.ndarray, new: np.ndarray) -> None:
    from onnx import numpy_helper

    q = numpy_helper.to_array(weight_init)
    axis = next((a.i for a in dq_node.attribute if a.name == "axis"), 1)
    shape = [1] * q.ndim
    if old.ndim == 1 and q.ndim:
        shape[axis] = -1
    info = np.iinfo(q.dtype)
    w = q.astype(np.float64) * old.reshape(shape)
    limit = min(info.max, -info.min)
    q2 = np.clip(np.rint(w / new.reshape(shape).astype(np.float64)), -limit, limit).astype(q.dtype)
    weight_init.CopyFrom(numpy_helper.from_array(q2, weight_init.name))


def _keep_qdq_feeding(qmodel, keep: dict[str, str]) -> None:
    """Keep in FP32, too, the DequantizeLinear nodes that feed a kept node and their QuantizeLinear."""
    from rtdeploy.precision.graph import producers

    prod = producers(qmodel.graph)
    stack = [n for n in qmodel.graph.node if n.name in keep]
    while stack:
        node = stack.pop()
        for t in node.input:
            src = prod.get(t)
            if src is None or src.name in keep or src.op_type not in ("QuantizeLinear", "DequantizeLinear"):
                continue
            keep[src.name] = f"feeds {node.name}, kept in FP32"
            stack.append(src)
