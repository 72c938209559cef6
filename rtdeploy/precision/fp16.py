"""FP32 ONNX -> FP16 ONNX, with an overflow guard measured on calibration data.

Conversion: every float32 initializer becomes float16 and every node computes in float16, except
the nodes the guard keeps in float32. Where a tensor crosses between the two precisions a
``Cast`` is inserted (one per tensor and direction). Inputs and outputs stay float32 (a Cast at
each end) unless FP16 I/O is asked for.

Guard: FP16 holds magnitudes up to 65,504. The largest |x| of every activation is measured on
the calibration images; a node whose input or output exceeds ``65504 / safety`` (16,376 with the
default safety factor 4, since real inputs can exceed what calibration saw), or whose weights
exceed 65,504, runs in float32. The report lists those nodes and why.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from rtdeploy.precision.graph import NameMaker

FP16_MAX = 65504.0
DEFAULT_SAFETY = 4.0
# Inputs that the ONNX spec fixes to float32 whatever the data type (scales of Resize/Upsample).
FLOAT32_ONLY_INPUTS = {("Resize", 2), ("Upsample", 1)}


@dataclass
class Fp16Report:
    """What the conversion did.

    Attributes:
        kept_fp32: node name -> why it stays float32.
        limit: the activation magnitude above which a node is kept in float32.
        max_abs: the largest activation magnitude seen on the calibration data (None without data).
        casts: how many Cast nodes were inserted.
        weights_clamped: weight values beyond the FP16 range (clamped to +-65504).
        weights_flushed: non-zero weight values too small for FP16 (they become 0).
        io: ``fp32`` or ``fp16`` inputs and outputs.
    """

    kept_fp32: dict[str, str] = field(default_factory=dict)
    limit: float = FP16_MAX / DEFAULT_SAFETY
    max_abs: float | None = None
    casts: int = 0
    weights_clamped: int = 0
    weights_flushed: int = 0
    io: str = "fp32"


def float_tensors(model) -> list[str]:
    """Names of the float32 activations of ``model`` (graph inputs and node outputs), in graph order."""
    types = _elem_types(model)
    from onnx import TensorProto

    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    names += [o for n in model.graph.node for o in n.output if o]
    return [t for t in dict.fromkeys(names) if types.get(t) == TensorProto.FLOAT]


def _elem_types(model) -> dict[str, int]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # best effort: an uninferable model keeps the types it records
        inferred = model
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.value_info, *g.input, *g.output)}
    types.update({i.name: i.data_type for i in g.initializer})
    return types


def guard_nodes(model, amax: dict[str, float], safety: float = DEFAULT_SAFETY) -> dict[str, str]:
    """Nodes to keep in float32: those touching an activation above ``65504 / safety`` or weights
    beyond 65504.

    Args:
        model: the FP32 model (nodes named).
        amax: largest |x| per activation, from calibration.
        safety: the margin below the FP16 maximum.

    Returns:
        node name -> reason.
    """
    from onnx import numpy_helper

    limit = FP16_MAX / safety
    big_weights = {i.name for i in model.graph.initializer
                   if i.data_type == 1 and np.abs(numpy_helper.to_array(i)).max(initial=0.0) > FP16_MAX}
    kept = {}
    for node in model.graph.node:
        for t in (*node.input, *node.output):
            if t in big_weights:
                kept[node.name] = f"weights {t} exceed the FP16 range"
                break
            if amax.get(t, 0.0) > limit:
                kept[node.name] = f"{t} reaches |x| = {amax[t]:.4g} > {limit:.4g}"
                break
    return kept


def convert_fp16(model, keep_fp32: dict[str, str] | set[str] = frozenset(), *, fp16_io: bool = False):
    """A float16 copy of ``model`` with the ``keep_fp32`` nodes left in float32.

    Args:
        model: an FP32 ``onnx.ModelProto`` (nodes named).
        keep_fp32: names of nodes that compute in float32.
        fp16_io: make the graph inputs and outputs float16 (else they stay float32).

    Returns:
        ``(model, Fp16Report)``; the report's ``kept_fp32`` and ``max_abs`` are left to the caller.
    """
    import onnx
    from onnx import TensorProto

    m = copy.deepcopy(model)
    g = m.graph
    floats = set(float_tensors(model)) | {i.name for i in g.initializer if i.data_type == TensorProto.FLOAT}
    names = NameMaker(m)
    report = Fp16Report(io="fp16" if fp16_io else "fp32")
    dtype: dict[str, int] = {}
    casts: dict[tuple[str, int], str] = {}
    new_nodes: list = []
    new_inits: list = []
    consumers16 = _initializer_precisions(g, keep_fp32, floats)
    init_map = _convert_initializers(g, consumers16, report, names, new_inits)
    inits = {i.name for i in g.initializer}

    io_type = TensorProto.FLOAT16 if fp16_io else TensorProto.FLOAT
    for inp in g.input:
        if inp.name in floats and inp.name not in inits:
            inp.type.tensor_type.elem_type = io_type
            dtype[inp.name] = io_type

    def cast_to(tensor: str, to: int) -> str:
        if dtype.get(tensor, to) == to:
            return tensor
        key = (tensor, to)
        if key not in casts:
            out = names(f"{tensor}_{'fp16' if to == TensorProto.FLOAT16 else 'fp32'}")
            new_nodes.append(onnx.helper.make_node("Cast", [tensor], [out], name=names(f"{out}_Cast"), to=to))
            dtype[out] = to
            casts[key] = out
        return casts[key]

    for node in g.node:
        want = TensorProto.FLOAT if node.name in keep_fp32 else TensorProto.FLOAT16
        for i, t in enumerate(node.input):
            if not t or t not in floats:
                continue
            if (node.op_type, i) in FLOAT32_ONLY_INPUTS:
                continue
            if t in inits:
                node.input[i] = init_map.get((t, want), t)
            else:
                node.input[i] = cast_to(t, want)
        _retarget_node(node, want)
        new_nodes.append(node)
        for o in node.output:
            if o in floats:
                dtype[o] = want
    for out in g.output:
        if out.name not in floats:
            continue
        if dtype.get(out.name, io_type) != io_type:
            inner = names(f"{out.name}_{'fp16' if io_type == TensorProto.FLOAT else 'fp32'}")
            _rename_output(new_nodes, out.name, inner)
            new_nodes.append(onnx.helper.make_node("Cast", [inner], [out.name], name=names(f"{out.name}_Cast"), to=io_type))
        out.type.tensor_type.elem_type = io_type
    report.casts = sum(1 for n in new_nodes if n.op_type == "Cast") - sum(1 for n in model.graph.node if n.op_type == "Cast")
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(new_inits)
    _drop_unused_initializers(g)
    del g.value_info[:]
    return m, report


def _initializer_precisions(graph, keep_fp32, floats: set[str]) -> dict[str, set[int]]:
    from onnx import TensorProto

    wanted: dict[str, set[int]] = {}
    inits = {i.name for i in graph.initializer if i.data_type == TensorProto.FLOAT}
    for node in graph.node:
        want = TensorProto.FLOAT if node.name in keep_fp32 else TensorProto.FLOAT16
        for i, t in enumerate(node.input):
            if t in inits and t in floats and (node.op_type, i) not in FLOAT32_ONLY_INPUTS:
                wanted.setdefault(t, set()).add(want)
    return wanted


def _convert_initializers(graph, wanted: dict[str, set[int]], report: Fp16Report, names: NameMaker, new_inits: list) -> dict:
    """Float16 copies of float32 initializers read by FP16 nodes; returns (name, type) -> name."""
    from onnx import TensorProto, numpy_helper

    mapping = {}
    by_name = {i.name: i for i in graph.initializer}
    for name, types in wanted.items():
        if TensorProto.FLOAT16 not in types:
            continue
        w = numpy_helper.to_array(by_name[name])
        report.weights_clamped += int(np.count_nonzero(np.abs(w) > FP16_MAX))
        half = np.clip(w, -FP16_MAX, FP16_MAX).astype(np.float16)
        report.weights_flushed += int(np.count_nonzero((half == 0) & (w != 0)))
        if TensorProto.FLOAT in types:
            new_name = names(f"{name}_fp16")
            new_inits.append(numpy_helper.from_array(half, new_name))
            mapping[(name, TensorProto.FLOAT16)] = new_name
        else:
            by_name[name].CopyFrom(numpy_helper.from_array(half, name))
            mapping[(name, TensorProto.FLOAT16)] = name
        mapping[(name, TensorProto.FLOAT)] = name
    return mapping


def _retarget_node(node, want: int) -> None:
    """Make type-carrying attributes of ``node`` match its precision (Cast targets, Constants)."""
    from onnx import TensorProto, numpy_helper

    if node.op_type == "Cast":
        for a in node.attribute:
            if a.name == "to" and a.i in (TensorProto.FLOAT, TensorProto.FLOAT16):
                a.i = want
    elif node.op_type == "Constant" and want == TensorProto.FLOAT16:
        for a in node.attribute:
            if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                arr = numpy_helper.to_array(a.t)
                a.t.CopyFrom(numpy_helper.from_array(np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16), a.t.name))


def _rename_output(nodes: list, old: str, new: str) -> None:
    for n in nodes:
        for i, o in enumerate(n.output):
            if o == old:
                n.output[i] = new
        for i, t in enumerate(n.input):
            if t == old:
                n.input[i] = new


def _drop_unused_initializers(graph) -> None:
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
