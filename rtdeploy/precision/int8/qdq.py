"""Q/DQ placement for TensorRT's explicit INT8, and the weight quantization.

Rules (the placement TensorRT fuses best in CNNs):

- **Conv / Gemm / MatMul with constant weights**: a per-tensor symmetric Q/DQ pair on the data
  input, and the weights stored as int8 with a per-output-channel symmetric DequantizeLinear
  (axis 0 for Conv and for Gemm with ``transB=1``, axis 1 for ``B`` stored as K x N).
- **Residual Add** (two activation inputs, at least one written by a Conv/Gemm): a Q/DQ pair on the
  *shortcut* input only. The conv-branch input stays in float so that TensorRT fuses the Add (and
  the ReLU after it) into that convolution as its epilogue. When both inputs come from
  convolutions (a projection shortcut), the shortcut is the shallower one (fewer ops from the
  graph input). A BatchNormalization left after a convolution (a model exported without folding)
  counts as part of that convolution: TensorRT folds it in before fusing the Add.
- No Q/DQ on biases (TensorRT folds them in int32/float) and none on outputs: a layer's output is
  quantized where its consumer wants int8 input, so it appears once, before the consumer.

Scales of a quantized tensor are taken from the statistics of the tensor it was copied from
through *scale-transparent* ops (Slice, zero Pad, Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
Identity). The CIFAR option-A shortcut (Slice, Slice, zero Pad) therefore uses exactly the scale of
the block input, which is already quantized for the block's first convolution: quantizing the
shortcut adds no second rounding error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from rtdeploy.errors import PrecisionError
from rtdeploy.precision.graph import NameMaker, initializers, name_nodes, producers

INT8_MAX = 127
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
# Ops TensorRT folds into the convolution before them; a tensor they write still "comes from" it.
FOLDED_INTO_CONV = ("BatchNormalization",)
TRANSPARENT_OPS = ("Slice", "Pad", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity")


@dataclass(frozen=True)
class QuantUnit:
    """One node that reads int8 in the quantized model.

    Attributes:
        node: the node's name.
        op_type: ``Conv``, ``Gemm``, ``MatMul`` or ``Add``.
        input_index: which input of the node is the quantized activation.
        activation: the tensor that gets a Q/DQ pair before this node.
        observe: the tensor whose statistics give ``activation``'s scale.
        weight: the weight initializer (weighted ops), else None.
        axis: the output-channel axis of ``weight``.
    """

    node: str
    op_type: str
    input_index: int
    activation: str
    observe: str
    weight: str | None = None
    axis: int | None = None


@dataclass
class QdqPlan:
    """Where Q/DQ goes in one model: the units in graph order."""

    units: list[QuantUnit] = field(default_factory=list)

    def observed(self) -> list[str]:
        """The tensors whose statistics are needed, each once, in graph order."""
        return list(dict.fromkeys(u.observe for u in self.units))


def plan_qdq(model) -> QdqPlan:
    """Find every weighted op and residual Add of ``model`` and where its Q/DQ goes.

    Args:
        model: an FP32 ``onnx.ModelProto``; unnamed nodes are named in place.
    """
    name_nodes(model)
    g = model.graph
    prod, inits = producers(g), initializers(g)
    const = set(inits) | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    depth = _depths(g)
    units = []
    for node in g.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1 and node.input[1] in inits and node.input[0] not in const:
            src = observe_source(node.input[0], prod, const)
            units.append(QuantUnit(node.name, node.op_type, 0, node.input[0], src, node.input[1], _weight_axis(node, inits[node.input[1]])))
        elif node.op_type == "Add" and len(node.input) == 2 and not (set(node.input) & const):
            index = _shortcut_index(node, prod, depth)
            if index is not None:
                src = observe_source(node.input[index], prod, const)
                units.append(QuantUnit(node.name, "Add", index, node.input[index], src))
    return QdqPlan(units)


def observe_source(tensor: str, prod: dict, const: set) -> str:
    """Follow ``tensor`` back through scale-transparent ops to the tensor that sets its scale."""
    seen = set()
    while tensor in prod and tensor not in seen:
        seen.add(tensor)
        node = prod[tensor]
        if node.op_type not in TRANSPARENT_OPS or not node.input or node.input[0] in const:
            break
        if node.op_type == "Pad" and not _zero_pad(node, const):
            break
        tensor = node.input[0]
    return tensor


def _zero_pad(node, const: set) -> bool:
    mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
    if mode != b"constant":
        return False
    # A constant value input, if given, must be a known zero; we only accept the default (absent).
    return len(node.input) < 3 or node.input[2] == ""


def _weight_axis(node, weight) -> int:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return len(weight.dims) - 1  # MatMul: B is (..., K, N); channels are N


def _depths(graph) -> dict[str, int]:
    """Longest path (in nodes) from a graph input to each tensor; graph order is topological."""
    depth: dict[str, int] = {}
    for node in graph.node:
        d = 1 + max((depth.get(i, 0) for i in node.input if i), default=0)
        for o in node.output:
            depth[o] = d
    return depth


def _shortcut_index(node, prod: dict, depth: dict) -> int | None:
    from_conv = [_from_weighted(t, prod) for t in node.input]
    if from_conv == [True, False]:
        return 1
    if from_conv == [False, True]:
        return 0
    if from_conv == [True, True]:
        return 0 if depth.get(node.input[0], 0) < depth.get(node.input[1], 0) else 1
    return None  # an Add of two non-conv tensors has no conv to fuse into: left in float


def _from_weighted(tensor: str, prod: dict) -> bool:
    node = prod.get(tensor)
    while node is not None and node.op_type in FOLDED_INTO_CONV and node.input:
        node = prod.get(node.input[0])
    return node is not None and node.op_type in WEIGHTED_OPS


def scale_from_amax(amax: float) -> float:
    """The symmetric int8 scale for a clipping threshold (1.0 for an all-zero tensor)."""
    return float(np.float32(amax / INT8_MAX)) if amax > 0 else 1.0


def quantize_weight(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric int8: returns ``(int8 weights, float32 scales)`` along ``axis``."""
    moved = np.moveaxis(w.astype(np.float32), axis, 0)
    amax = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    scales = np.where(amax > 0, amax / INT8_MAX, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scales.reshape(shape)), -128, INT8_MAX).astype(np.int8)
    return q, scales


def insert_qdq(model, plan: QdqPlan, scales: dict[str, float], keep: frozenset[str] | set[str] = frozenset(),
               unit_scales: dict[str, float] | None = None, weights: dict | None = None):
    """A copy of ``model`` with Q/DQ pairs and int8 weights for every unit not in ``keep``.

    Units that quantize the same tensor with the same scale share one Q/DQ pair.

    Args:
        model: the FP32 model the plan was made for.
        plan: from :func:`plan_qdq`.
        scales: activation scale per observed tensor (``plan.observed()``).
        keep: node names left in floating point (no Q/DQ on their inputs or weights).
        unit_scales: activation scales by node name that override ``scales`` for that node.
        weights: weight initializer name -> (int8 weights, per-channel scales) that replace
            round-to-nearest for that weight (adaptive rounding); same layout and scale format.

    Raises:
        PrecisionError: a needed scale is missing.
    """
    from onnx import numpy_helper

    m = copy.deepcopy(model)
    g = m.graph
    names = NameMaker(m)
    active = [u for u in plan.units if u.node not in keep]
    unit_scales = unit_scales or {}
    missing = sorted({u.observe for u in active if u.node not in unit_scales} - set(scales))
    if missing:
        raise PrecisionError(f"no scale for {len(missing)} tensor(s), e.g. {', '.join(missing[:3])}; re-run the calibration for this model")
    scale_of = {u.node: float(unit_scales.get(u.node, scales.get(u.observe, 0.0))) for u in active}
    act_q = _activation_qdq(active, scale_of, names)
    w_dq, new_inits = _weight_dq(active, initializers(g), names, weights or {})
    slot = {(u.node, u.input_index): act_q[(u.activation, scale_of[u.node])]["dq_out"] for u in active}
    after: dict[str, list] = {}
    for (t, _), q in act_q.items():
        after.setdefault(t, []).extend(q["nodes"])
    new_nodes = [n for t in _graph_inputs(g) for n in after.get(t, [])]
    for node in g.node:
        if node.name in w_dq:
            new_nodes.extend(w_dq[node.name]["nodes"])
            node.input[1] = w_dq[node.name]["dq_out"]
        for i in range(len(node.input)):
            if (node.name, i) in slot:
                node.input[i] = slot[(node.name, i)]
        new_nodes.append(node)
        new_nodes.extend(n for o in node.output for n in after.get(o, []))
    del g.node[:]
    g.node.extend(new_nodes)
    for t in act_q.values():
        g.initializer.extend(numpy_helper.from_array(a, n) for n, a in t["inits"])
    g.initializer.extend(numpy_helper.from_array(a, n) for n, a in new_inits)
    _drop_unused_initializers(g)
    return m


def _graph_inputs(graph) -> list[str]:
    return [i.name for i in graph.input]


def _activation_qdq(units: list[QuantUnit], scale_of: dict[str, float], names: NameMaker) -> dict:
    """One Q/DQ pair per (tensor, scale)."""
    from onnx import helper

    out: dict = {}
    for u in units:
        key = (u.activation, scale_of[u.node])
        if key in out:
            continue
        t = u.activation
        s, z = names(f"{t}_scale"), names(f"{t}_zero_point")
        q_out, dq_out = names(f"{t}_quantized"), names(f"{t}_dequantized")
        nodes = [
            helper.make_node("QuantizeLinear", [t, s, z], [q_out], name=names(f"{t}_QuantizeLinear")),
            helper.make_node("DequantizeLinear", [q_out, s, z], [dq_out], name=names(f"{t}_DequantizeLinear")),
        ]
        inits = [(s, np.array(key[1], dtype=np.float32)), (z, np.array(0, dtype=np.int8))]
        out[key] = {"nodes": nodes, "dq_out": dq_out, "inits": inits}
    return out


def _weight_dq(units: list[QuantUnit], inits: dict, names: NameMaker, overrides: dict) -> tuple[dict, list]:
    from onnx import helper, numpy_helper

    by_node, by_weight, new_inits = {}, {}, []
    for u in units:
        if u.weight is None:
            continue
        if u.weight not in by_weight:
            w = numpy_helper.to_array(inits[u.weight])
            q, s = overrides[u.weight] if u.weight in overrides else quantize_weight(w, u.axis)
            qn, sn, zn = names(f"{u.weight}_quantized"), names(f"{u.weight}_scale"), names(f"{u.weight}_zero_point")
            dq_out = names(f"{u.weight}_dequantized")
            new_inits += [(qn, q), (sn, s), (zn, np.zeros(s.shape, dtype=np.int8))]
            node = helper.make_node("DequantizeLinear", [qn, sn, zn], [dq_out], name=names(f"{u.weight}_DequantizeLinear"), axis=u.axis)
            by_weight[u.weight] = {"nodes": [node], "dq_out": dq_out}
            by_node[u.node] = by_weight[u.weight]
        else:
            by_node[u.node] = {"nodes": [], "dq_out": by_weight[u.weight]["dq_out"]}
    return by_node, new_inits


def _drop_unused_initializers(graph) -> None:
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    removed = {i.name for i in graph.initializer} - {i.name for i in keep}
    del graph.initializer[:]
    graph.initializer.extend(keep)
    inputs = [i for i in graph.input if i.name not in removed]  # old exporters list weights as inputs
    del graph.input[:]
    graph.input.extend(inputs)


def qdq_counts(model) -> dict[str, int]:
    """How many QuantizeLinear / DequantizeLinear nodes a model holds (for reports and tests)."""
    ops = [n.op_type for n in model.graph.node]
    return {"QuantizeLinear": ops.count("QuantizeLinear"), "DequantizeLinear": ops.count("DequantizeLinear")}


def quantized_inputs(model) -> dict[str, list[int]]:
    """Node name -> indices of its inputs that come from a DequantizeLinear (for tests and reports)."""
    prod = producers(model.graph)
    result = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        idx = [i for i, t in enumerate(node.input) if t in prod and prod[t].op_type == "DequantizeLinear"]
        if idx:
            result[node.name] = idx
    return result
