"""An ONNX CNN graph run by PyTorch, with int8 fake quantization where a Q/DQ plan puts it.

Block reconstruction (:mod:`rtdeploy.precision.int8.reconstruct`) needs gradients through a part of
the quantized network, which onnxruntime cannot give. :class:`TorchGraph` reads the float ops of an
FP32 ONNX model (the ops CNNs are made of; anything else raises :class:`Unsupported`) and runs any
contiguous run of its nodes in torch, with

- each quantized activation input of the plan replaced by symmetric int8 quantize-dequantize with
  its scale (round half to even and clamp to [-128, 127], as QuantizeLinear/DequantizeLinear), and
- the weights of chosen nodes replaced by tensors the caller gives (dequantized int8 weights, or
  the soft-rounded weights being optimized).

With every unit quantized and the weights dequantized it computes what the Q/DQ model means, the
graph onnxruntime runs with its optimizations off (tested). Nodes whose inputs are all constants
(Constant, Cast of a constant, shape arithmetic on constants) are evaluated once when the graph is
read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rtdeploy.errors import PrecisionError
from rtdeploy.precision.int8.qdq import INT8_MAX, QdqPlan


class Unsupported(PrecisionError):
    """The graph holds an op (or an op setting) this module cannot run in torch."""


def fake_quant(x, scale):
    """Symmetric int8 quantize-dequantize of torch ``x`` (round half to even, clamp to [-128, 127]).

    The value is exactly QuantizeLinear then DequantizeLinear. Gradients are the straight-through
    ones of LSQ (Esser et al., 2020): 1 for ``x`` inside the range and 0 where it is clipped;
    ``round(x / s) - x / s`` for the scale inside the range and the range's bound outside.
    """
    import torch

    v = torch.clamp(x / scale, -128, INT8_MAX)
    return (v + (torch.round(v) - v).detach()) * scale


@dataclass(frozen=True)
class Step:
    """One node to run: its op, input and output names, attributes."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict


class TorchGraph:
    """The non-constant nodes of an FP32 ONNX model as torch steps.

    Args:
        model: the FP32 ``onnx.ModelProto`` (nodes named).

    Raises:
        Unsupported: an op or attribute this module does not run.
    """

    def __init__(self, model):
        import torch
        from onnx import helper, numpy_helper

        from rtdeploy.precision.graph import graph_input_names

        g = model.graph
        self.input = graph_input_names(g)[0]
        self.outputs = [o.name for o in g.output]
        self.const = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in g.initializer}
        self.steps: list[Step] = []
        for node in g.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            step = Step(node.name, node.op_type, tuple(node.input), tuple(node.output), attrs)
            if node.op_type == "Constant":
                self.const[node.output[0]] = torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())
                continue
            # Checked before constant folding too: a folded op (ConstantOfShape in an exported
            # flatten head, say) runs through the same table as any step.
            if node.op_type not in _OPS:
                raise Unsupported(f"op {node.op_type} ({node.name}) has no torch form here")
            if all(i == "" or i in self.const for i in node.input):
                for name, value in zip(node.output, _run_step(step, self.const, {}, {})):
                    self.const[name] = value
            else:
                self.steps.append(step)
        self.index = {s.name: i for i, s in enumerate(self.steps)}

    def run(self, env: dict, start: int = 0, stop: int | None = None, act_scales: dict | None = None,
            weights: dict | None = None) -> dict:
        """Run steps ``start:stop`` on the tensors in ``env`` (updated in place and returned).

        Args:
            env: tensor name -> torch tensor; must hold every input the steps read that is not a
                constant.
            act_scales: (node name, input index) -> scale: that input is fake-quantized.
            weights: node name -> tensor used as its weight input (input 1) instead of the FP32 one.
        """
        for step in self.steps[start:stop]:
            for name, value in zip(step.outputs, _run_step(step, {**self.const, **env}, act_scales or {}, weights or {})):
                env[name] = value
        return env

    def forward(self, x, act_scales: dict | None = None, weights: dict | None = None, outputs: Iterable[str] | None = None):
        """The whole graph on input ``x``: the first graph output (or the tensors ``outputs``, as a dict)."""
        env = self.run({self.input: x}, act_scales=act_scales, weights=weights)
        if outputs is None:
            return env[self.outputs[0]]
        return {n: env[n] for n in outputs}


def unit_scales(plan: QdqPlan, scales: dict[str, float], keep: Iterable[str] = ()) -> dict[tuple[str, int], float]:
    """(node, input index) -> activation scale for every unit of ``plan`` not in ``keep``."""
    kept = set(keep)
    return {(u.node, u.input_index): scales[u.observe] for u in plan.units if u.node not in kept}


def dequantized_weights(layers: dict, rounded: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """node -> torch float weights ``q * scale`` from int8 weights by initializer name (``rounded``)."""
    import torch

    out = {}
    for node, layer in layers.items():
        q, s = rounded[layer.unit.weight]
        shape = [1] * q.ndim
        shape[layer.unit.axis] = -1
        out[node] = torch.from_numpy((q.astype(np.float32) * s.reshape(shape)).astype(np.float32))
    return out


def _run_step(step: Step, values: dict, act_scales: dict, weights: dict) -> list:
    args = []
    for i, name in enumerate(step.inputs):
        if name == "":
            args.append(None)
            continue
        if i == 1 and step.name in weights:
            args.append(weights[step.name])
            continue
        x = values[name]
        if (step.name, i) in act_scales:
            x = fake_quant(x, act_scales[(step.name, i)])
        args.append(x)
    out = _OPS[step.op](step.attrs, *args)
    return list(out) if isinstance(out, tuple) else [out]


def _ints(value) -> list[int]:
    return [int(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]


def _spatial(a: dict, name: str, default: int, n: int = 2) -> list[int]:
    return list(a.get(name, [default] * n))


def _no_auto_pad(a: dict, op: str) -> None:
    pad = a.get("auto_pad", b"NOTSET")
    if pad not in (b"NOTSET", "NOTSET"):
        raise Unsupported(f"{op} with auto_pad={pad!r} has no torch form here")


def _pad2d(x, pads: list[int], value: float = 0.0):
    import torch.nn.functional as F

    if not any(pads):
        return x
    return F.pad(x, (pads[1], pads[3], pads[0], pads[2]), value=value)


def _conv(a, x, w, b=None):
    import torch.nn.functional as F

    _no_auto_pad(a, "Conv")
    if x.dim() != 4:
        raise Unsupported("Conv that is not 2-D has no torch form here")
    pads = _spatial(a, "pads", 0, 4)
    padding = (pads[0], pads[1])
    if pads[:2] != pads[2:]:  # asymmetric: pad first
        x, padding = _pad2d(x, pads), (0, 0)
    return F.conv2d(x, w, b, stride=_spatial(a, "strides", 1), padding=padding, dilation=_spatial(a, "dilations", 1),
                    groups=int(a.get("group", 1)))


def _gemm(a, x, w, c=None):
    x = x.T if a.get("transA", 0) else x
    w = w.T if a.get("transB", 0) else w
    y = a.get("alpha", 1.0) * (x @ w)
    return y if c is None else y + a.get("beta", 1.0) * c


def _pool(a, x, kind: str):
    import torch.nn.functional as F

    _no_auto_pad(a, kind)
    if x.dim() != 4:
        raise Unsupported(f"{kind} that is not 2-D has no torch form here")
    k, s = list(a["kernel_shape"]), _spatial(a, "strides", 1)
    pads = _spatial(a, "pads", 0, 4)
    ceil = bool(a.get("ceil_mode", 0))
    if kind == "MaxPool":
        if _spatial(a, "dilations", 1) != [1, 1]:
            raise Unsupported("MaxPool with dilations has no torch form here")
        return F.max_pool2d(_pad2d(x, pads, float("-inf")), k, s, ceil_mode=ceil)
    if a.get("count_include_pad", 0) or not any(pads):
        return F.avg_pool2d(_pad2d(x, pads), k, s, ceil_mode=ceil)
    if pads[0] == pads[2] and pads[1] == pads[3] and pads[0] <= k[0] // 2 and pads[1] <= k[1] // 2:
        return F.avg_pool2d(x, k, s, padding=(pads[0], pads[1]), ceil_mode=ceil, count_include_pad=False)
    raise Unsupported("AveragePool with asymmetric pads has no torch form here")


def _slice(a, x, starts, ends, axes=None, steps=None):
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else list(range(len(starts)))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if st < 0:
            raise Unsupported("Slice with a negative step has no torch form here")
        n = x.shape[ax]
        index[ax] = slice(max(0, min(n, s + n if s < 0 else s)), max(0, min(n, e + n if e < 0 else e)), st)
    return x[tuple(index)]


def _pad(a, x, pads, value=None, axes=None):
    import torch.nn.functional as F

    mode = a.get("mode", b"constant")
    if mode not in (b"constant", "constant") or axes is not None:
        raise Unsupported(f"Pad mode {mode!r} (or with axes) has no torch form here")
    p = _ints(pads)
    n = len(p) // 2
    torch_pads = []
    for ax in reversed(range(n)):
        torch_pads += [p[ax], p[ax + n]]
    return F.pad(x, torch_pads, value=float(value.reshape(-1)[0]) if value is not None else 0.0)


def _reshape(a, x, shape):
    dims = _ints(shape)
    if not a.get("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _flatten(a, x):
    axis = a.get("axis", 1)
    axis = axis + x.dim() if axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _clip(a, x, low=None, high=None):
    import torch

    low = a.get("min") if low is None and "min" in a else low
    high = a.get("max") if high is None and "max" in a else high
    return torch.clamp(x, min=None if low is None else float(low), max=None if high is None else float(high))


def _batchnorm(a, x, scale, bias, mean, var):
    shape = [1, -1] + [1] * (x.dim() - 2)
    inv = scale / (var + a.get("epsilon", 1e-5)).sqrt()
    return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)


def _axes(a, axes):
    return _ints(axes) if axes is not None else list(a.get("axes", []))


def _squeeze(a, x, axes=None):
    ax = _axes(a, axes)
    if not ax:
        return x.squeeze()
    for d in sorted((d + x.dim() if d < 0 else d for d in ax), reverse=True):
        x = x.squeeze(d)
    return x


def _unsqueeze(a, x, axes=None):
    out_rank = x.dim() + len(_axes(a, axes))
    for d in sorted(d + out_rank if d < 0 else d for d in _axes(a, axes)):
        x = x.unsqueeze(d)
    return x


def _cast(a, x):
    import torch
    from onnx import TensorProto

    types = {TensorProto.FLOAT: torch.float32, TensorProto.INT64: torch.int64, TensorProto.INT32: torch.int32,
             TensorProto.DOUBLE: torch.float64}
    if a["to"] not in types:
        raise Unsupported(f"Cast to ONNX type {a['to']} has no torch form here")
    return x.to(types[a["to"]])


def _concat(a, *xs):
    import torch

    return torch.cat(xs, dim=a["axis"])


def _transpose(a, x):
    return x.permute(*(a["perm"] if "perm" in a else reversed(range(x.dim()))))


def _constant_of_shape(a, shape):
    import torch
    from onnx import numpy_helper

    # ONNX: the fill is the one-element tensor attribute `value`, float32 zero when absent.
    fill = torch.from_numpy(numpy_helper.to_array(a["value"]).reshape(-1).copy()) if "value" in a else torch.zeros(1)
    return torch.full(_ints(shape), fill[0].item(), dtype=fill.dtype)


def _relu(a, x):
    import torch

    return torch.relu(x)


_OPS = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": lambda a, x, w: x @ w,
    "Relu": _relu,
    "Clip": _clip,
    "Add": lambda a, x, y: x + y,
    "Sub": lambda a, x, y: x - y,
    "Mul": lambda a, x, y: x * y,
    "Div": lambda a, x, y: x / y,
    "MaxPool": lambda a, x: _pool(a, x, "MaxPool"),
    "AveragePool": lambda a, x: _pool(a, x, "AveragePool"),
    "GlobalAveragePool": lambda a, x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Slice": _slice,
    "Pad": _pad,
    "Identity": lambda a, x: x,
    "BatchNormalization": _batchnorm,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": _transpose,
    "Concat": _concat,
    "Cast": _cast,
    "ConstantOfShape": _constant_of_shape,
}
