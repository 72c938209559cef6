"""Q/DQ placement for onnxruntime's CPU kernels (``quantize --int8 --target onnxruntime-cpu``).

onnxruntime runs a Q/DQ graph fast on a CPU only where its graph optimizer can replace a
*node unit* — DequantizeLinear on every input, the op, QuantizeLinear on its output — by one
integer kernel (QLinearConv, QGemm, QLinearMatMul, QLinearAdd, QLinearGlobalAveragePool, ...), and
where the activations are uint8 (its x86 kernels multiply uint8 activations by int8 weights; int8
activations are accepted only on some platforms). The TensorRT placement (:mod:`qdq`) quantizes
inputs only, so no convolution has a QuantizeLinear after it and onnxruntime falls back to float
convolutions between Q/DQ pairs, which is slower than FP32. Here:

- **Integer ops**: Conv, Gemm and MatMul with constant weights; Add of two activations (residual);
  GlobalAveragePool and AveragePool. Every float activation *input* of each gets a Q/DQ, so every
  such op's output (after an optional ReLU, which the quantization's zero point makes redundant)
  is quantized where its consumer reads it: the op becomes a whole node unit.
- **Pass-through ops** (MaxPool, Flatten, Reshape, Squeeze, Unsqueeze, Transpose) whose output is
  quantized get a Q/DQ on their input too, *with the same scale and zero point*: onnxruntime then
  drops the pair around them and runs them on uint8 directly.
- **Activations**: uint8 with a zero point. A tensor that is non-negative by construction (a ReLU
  output, or one reached from it through pass-through/scale-transparent ops) uses zero point 0 and
  the whole 0..255 range for ``[0, amax]``; any other tensor uses zero point 128 for
  ``[-amax, amax]``. ``amax`` is the calibrator's threshold, from the same |x| statistics as the
  TensorRT target.
- **Weights**: int8, symmetric, per output channel, in -63..63 (see ``WEIGHT_LEVELS``: the
  full -127..127 range overflows the int16 pair sums of onnxruntime's AVX2 kernels). **Biases**: int32 with scale
  ``input scale x weight scale`` per channel and zero point 0, behind a DequantizeLinear — the
  form onnxruntime's Conv/Gemm node units require for the bias input.
- Each consumer gets its own DequantizeLinear (one QuantizeLinear per tensor), so every node unit
  owns its input DQ.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from rtdeploy.errors import PrecisionError
from rtdeploy.precision.graph import NameMaker, initializers, name_nodes, producers
from rtdeploy.precision.int8.qdq import TRANSPARENT_OPS, WEIGHTED_OPS, _weight_axis

UINT8_LEVELS = 255
# Weights use -63..63, not -127..127: onnxruntime's x86 uint8 x int8 kernels without VNNI add pairs of
# products in int16 (VPMADDUBSW), which saturates above 32,767; 255 * 63 * 2 = 32,130 cannot. With
# the full range, ResNet-56's agreement with FP32 fell from 97.8 % to 88.9 % on an AVX2 machine.
WEIGHT_LEVELS = 63
POOL_OPS = ("GlobalAveragePool", "AveragePool")
PASS_THROUGH_OPS = ("MaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose")
NON_NEGATIVE_OPS = ("Relu",)


@dataclass(frozen=True)
class CpuTensor:
    """One activation that is stored as uint8 in the CPU-target model.

    Attributes:
        tensor: the tensor that gets a QuantizeLinear.
        observe: the tensor whose statistics give its threshold (through scale-transparent ops).
        non_negative: True when the tensor cannot be negative (zero point 0), else zero point 128.
    """

    tensor: str
    observe: str
    non_negative: bool


@dataclass(frozen=True)
class CpuWeighted:
    """A Conv/Gemm/MatMul with constant weights (and optional constant bias)."""

    node: str
    op_type: str
    input: str
    weight: str
    axis: int
    bias: str | None


@dataclass
class CpuPlan:
    """Where Q/DQ goes for onnxruntime's CPU kernels: quantized tensors (graph order) and weighted ops."""

    tensors: list[CpuTensor] = field(default_factory=list)
    weighted: list[CpuWeighted] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)

    def observed(self) -> list[str]:
        """The tensors whose statistics are needed, each once, in graph order."""
        return list(dict.fromkeys(t.observe for t in self.tensors))


def plan_cpu(model) -> CpuPlan:
    """The CPU-target placement for ``model`` (an FP32 ``onnx.ModelProto``; nodes named in place)."""
    name_nodes(model)
    g = model.graph
    prod, inits = producers(g), initializers(g)
    const = set(inits) | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    wanted: list[str] = []
    weighted, layers = [], []
    for node in g.node:
        acts = _integer_inputs(node, inits, const)
        if acts is None:
            continue
        layers.append(node.name)
        wanted.extend(acts)
        if node.op_type in WEIGHTED_OPS:
            bias = node.input[2] if len(node.input) > 2 and node.input[2] in inits else None
            weighted.append(CpuWeighted(node.name, node.op_type, node.input[0], node.input[1], _weight_axis(node, inits[node.input[1]]), bias))
    order = {t: i for i, t in enumerate(_tensor_order(g))}
    quantized = _close_over_pass_through(wanted, prod, const)
    tensors = [CpuTensor(t, _observe(t, prod, const), _non_negative(t, prod, const)) for t in sorted(quantized, key=lambda t: order.get(t, -1))]
    return CpuPlan(tensors, weighted, layers)


def _integer_inputs(node, inits: dict, const: set) -> list[str] | None:
    """The activation inputs of ``node`` if onnxruntime has an integer kernel for it, else None."""
    if node.op_type in WEIGHTED_OPS:
        if len(node.input) > 1 and node.input[1] in inits and node.input[0] not in const:
            if node.op_type == "Gemm" and _attr(node, "transA", 0):
                return None
            return [node.input[0]]
        return None
    if node.op_type == "Add" and len(node.input) == 2 and not (set(node.input) & const):
        return list(node.input)
    if node.op_type in POOL_OPS and node.input[0] not in const:
        return [node.input[0]]
    return None


def _attr(node, name: str, default):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _close_over_pass_through(wanted: list[str], prod: dict, const: set) -> set[str]:
    """``wanted`` plus, for each of them written by a pass-through op, that op's input (repeatedly)."""
    out, stack = set(), list(wanted)
    while stack:
        t = stack.pop()
        if t in out:
            continue
        out.add(t)
        node = prod.get(t)
        if node is not None and node.op_type in PASS_THROUGH_OPS and node.input and node.input[0] not in const:
            stack.append(node.input[0])
    return out


def _observe(tensor: str, prod: dict, const: set) -> str:
    """Follow ``tensor`` back through ops that keep its values' scale (TensorRT's transparent set
    plus MaxPool, whose outputs are a subset of its inputs)."""
    from rtdeploy.precision.int8.qdq import _zero_pad

    seen = set()
    while tensor in prod and tensor not in seen:
        seen.add(tensor)
        node = prod[tensor]
        if node.op_type not in (*TRANSPARENT_OPS, "MaxPool") or not node.input or node.input[0] in const:
            break
        if node.op_type == "Pad" and not _zero_pad(node, const):
            break
        tensor = node.input[0]
    return tensor


def _non_negative(tensor: str, prod: dict, const: set) -> bool:
    """True when ``tensor`` is a ReLU output, or one seen through value-preserving ops (zero Pad included)."""
    from rtdeploy.precision.int8.qdq import _zero_pad

    seen = set()
    while tensor in prod and tensor not in seen:
        seen.add(tensor)
        node = prod[tensor]
        if node.op_type in NON_NEGATIVE_OPS:
            return True
        if node.op_type not in (*TRANSPARENT_OPS, "MaxPool") or not node.input or node.input[0] in const:
            return False
        if node.op_type == "Pad" and not _zero_pad(node, const):
            return False
        tensor = node.input[0]
    return False


def _tensor_order(graph) -> list[str]:
    return [i.name for i in graph.input] + [o for n in graph.node for o in n.output]


def activation_qparams(amax: float, non_negative: bool) -> tuple[float, int]:
    """uint8 ``(scale, zero point)`` for a clipping threshold: ``[0, amax]`` on 0..255 (zero point 0)
    or ``[-amax, amax]`` around zero point 128."""
    if not amax > 0:
        return 1.0, 0 if non_negative else 128
    if non_negative:
        return float(np.float32(amax / UINT8_LEVELS)), 0
    return float(np.float32(amax / 127)), 128


def quantize_weight_cpu(w: np.ndarray, axis: int, levels: int = WEIGHT_LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric int8 in ``-levels..levels``: ``(int8 weights, float32 scales)`` along ``axis``."""
    moved = np.moveaxis(w.astype(np.float32), axis, 0)
    amax = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    scales = np.where(amax > 0, amax / levels, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scales.reshape(shape)), -levels, levels).astype(np.int8)
    return q, scales


def insert_cpu_qdq(model, plan: CpuPlan, thresholds: dict[str, float]):
    """A copy of ``model`` in the CPU-target Q/DQ form.

    Args:
        model: the FP32 model the plan was made for.
        plan: from :func:`plan_cpu`.
        thresholds: clipping threshold (amax) per observed tensor (``plan.observed()``).

    Raises:
        PrecisionError: a needed threshold is missing.
    """
    from onnx import helper, numpy_helper

    missing = sorted(set(plan.observed()) - set(thresholds))
    if missing:
        raise PrecisionError(f"no threshold for {len(missing)} tensor(s), e.g. {', '.join(missing[:3])}; re-run the calibration for this model")
    m = copy.deepcopy(model)
    g = m.graph
    names = NameMaker(m)
    qparams = {t.tensor: activation_qparams(float(thresholds[t.observe]), t.non_negative) for t in plan.tensors}
    new_inits: list = []
    q_nodes: dict[str, list] = {}
    q_out: dict[str, tuple[str, str, str]] = {}
    for t in plan.tensors:
        scale, zp = qparams[t.tensor]
        s, z, q = names(f"{t.tensor}_scale"), names(f"{t.tensor}_zero_point"), names(f"{t.tensor}_quantized")
        new_inits += [numpy_helper.from_array(np.array(scale, np.float32), s), numpy_helper.from_array(np.array(zp, np.uint8), z)]
        q_nodes[t.tensor] = [helper.make_node("QuantizeLinear", [t.tensor, s, z], [q], name=names(f"{t.tensor}_QuantizeLinear"))]
        q_out[t.tensor] = (q, s, z)
    weight_nodes, rewire = _weight_and_bias_dq(plan, qparams, initializers(g), names, new_inits)
    new_nodes = [n for i in g.input for n in q_nodes.get(i.name, [])]
    for node in g.node:
        new_nodes.extend(weight_nodes.get(node.name, []))
        for i, t in rewire.get(node.name, {}).items():
            node.input[i] = t
        for i, t in enumerate(node.input):
            if t in q_out and node.op_type != "QuantizeLinear":
                q, s, z = q_out[t]
                dq = names(f"{t}_dequantized")
                new_nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [dq], name=names(f"{t}_DequantizeLinear")))
                node.input[i] = dq
        new_nodes.append(node)
        new_nodes.extend(n for o in node.output for n in q_nodes.get(o, []))
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(new_inits)
    _drop_unused(g)
    return m


def _weight_and_bias_dq(plan: CpuPlan, qparams: dict, inits: dict, names: NameMaker, new_inits: list):
    """DequantizeLinear nodes for int8 weights and int32 biases by the node that reads them, and
    that node's new input names by index."""
    from onnx import helper, numpy_helper

    nodes: dict[str, list] = {}
    rewire: dict[str, dict[int, str]] = {}
    for w in plan.weighted:
        q, w_scale = quantize_weight_cpu(numpy_helper.to_array(inits[w.weight]), w.axis)
        qn, sn, zn, dq = (names(f"{w.weight}_quantized"), names(f"{w.weight}_scale"), names(f"{w.weight}_zero_point"),
                          names(f"{w.weight}_dequantized"))
        new_inits += [numpy_helper.from_array(q, qn), numpy_helper.from_array(w_scale, sn),
                      numpy_helper.from_array(np.zeros(w_scale.shape, np.int8), zn)]
        nodes[w.node] = [helper.make_node("DequantizeLinear", [qn, sn, zn], [dq], name=names(f"{w.weight}_DequantizeLinear"), axis=w.axis)]
        rewire[w.node] = {1: dq}
        if w.bias is not None:
            b_node = _bias_dq(w, qparams[w.input][0], w_scale, inits, names, new_inits)
            nodes[w.node].append(b_node)
            rewire[w.node][2] = b_node.output[0]
    return nodes, rewire


def _bias_dq(w: CpuWeighted, x_scale: float, w_scale: np.ndarray, inits: dict, names: NameMaker, new_inits: list):
    """int32 bias with scale ``x_scale * w_scale`` per channel (zero point 0), as onnxruntime's
    integer kernels add it to their int32 accumulators."""
    from onnx import helper, numpy_helper

    b = numpy_helper.to_array(inits[w.bias]).astype(np.float64)
    scale = (np.float64(x_scale) * w_scale.astype(np.float64)).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
    i32 = np.iinfo(np.int32)
    q = np.clip(np.rint(b / scale.astype(np.float64)), i32.min, i32.max).astype(np.int32)
    qn, sn, zn, dq = names(f"{w.bias}_quantized"), names(f"{w.bias}_scale"), names(f"{w.bias}_zero_point"), names(f"{w.bias}_dequantized")
    new_inits += [numpy_helper.from_array(q, qn), numpy_helper.from_array(scale, sn),
                  numpy_helper.from_array(np.zeros(scale.shape, np.int32), zn)]
    return helper.make_node("DequantizeLinear", [qn, sn, zn], [dq], name=names(f"{w.bias}_DequantizeLinear"), axis=0)


def _drop_unused(graph) -> None:
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    removed = {i.name for i in graph.initializer} - {i.name for i in keep}
    del graph.initializer[:]
    graph.initializer.extend(keep)
    inputs = [i for i in graph.input if i.name not in removed]
    del graph.input[:]
    graph.input.extend(inputs)
