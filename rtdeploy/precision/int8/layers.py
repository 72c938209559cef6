"""The weighted ops of a Q/DQ plan as torch functions, for the methods that look at a layer's output.

AdaRound and the consumer-MSE calibrator both need, for a quantized Conv/Gemm/MatMul, its weights
as an ``(out, K)`` matrix and its input as ``K``-long columns (im2col for a Conv), so that the
layer's output is ``W @ columns``. :class:`WeightedLayer` holds that view of one unit. Grouped
convolutions and convolutions that are not 2-D are not supported (``supported`` is False); the
callers leave such layers to the plain methods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtdeploy.precision.int8.qdq import QuantUnit


@dataclass(frozen=True)
class WeightedLayer:
    """One weighted unit of a plan, as matrix algebra.

    Attributes:
        unit: the plan's unit.
        weight: the FP32 weights as stored in the model.
        kernel: Conv kernel size (kh, kw); None for Gemm/MatMul.
        strides, pads, dilations: Conv attributes (pads as ONNX: begin h, begin w, end h, end w).
        supported: whether the layer can be handled here (2-D, ungrouped Conv; 2-D Gemm/MatMul weights).
    """

    unit: QuantUnit
    weight: np.ndarray
    kernel: tuple[int, int] | None = None
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    supported: bool = True

    @property
    def out_channels(self) -> int:
        """Number of output channels (rows of :meth:`matrix`)."""
        return self.weight.shape[self.unit.axis]

    def matrix(self) -> np.ndarray:
        """The weights as ``(out, K)`` float32: output channels along axis 0."""
        w = np.moveaxis(self.weight.astype(np.float32), self.unit.axis, 0)
        return w.reshape(w.shape[0], -1)

    def to_weight(self, matrix: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`matrix`: an ``(out, K)`` array back in the stored layout."""
        moved = np.moveaxis(self.weight, self.unit.axis, 0).shape
        return np.moveaxis(matrix.reshape(moved), 0, self.unit.axis)

    def columns(self, x):
        """The layer input ``x`` (torch, batch first) as ``(K, n)`` columns: output = matrix @ columns."""
        import torch.nn.functional as F

        if self.kernel is None:
            return x.reshape(-1, x.shape[-1]).T
        padded = F.pad(x, (self.pads[1], self.pads[3], self.pads[0], self.pads[2]))
        cols = F.unfold(padded, self.kernel, dilation=self.dilations, stride=self.strides)  # (N, K, L)
        return cols.transpose(0, 1).reshape(cols.shape[1], -1)

    def positions(self, x_shape: tuple, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` random output positions of an input of ``x_shape`` (all when fewer exist), as flat indices."""
        total = self.output_positions(x_shape)
        if total <= count:
            return np.arange(total)
        return np.sort(rng.choice(total, size=count, replace=False))

    def output_positions(self, x_shape: tuple) -> int:
        """How many output positions (columns) an input of ``x_shape`` gives."""
        if self.kernel is None:
            return int(np.prod(x_shape[:-1]))
        oh, ow = self._out_hw(x_shape)
        return x_shape[0] * oh * ow

    def _out_hw(self, x_shape: tuple) -> tuple[int, int]:
        h = x_shape[2] + self.pads[0] + self.pads[2]
        w = x_shape[3] + self.pads[1] + self.pads[3]
        oh = (h - self.dilations[0] * (self.kernel[0] - 1) - 1) // self.strides[0] + 1
        ow = (w - self.dilations[1] * (self.kernel[1] - 1) - 1) // self.strides[1] + 1
        return oh, ow

    def sampled_columns(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The ``(K, len(positions))`` input columns at flat output ``positions`` (numpy, no full im2col)."""
        if self.kernel is None:
            return x.reshape(-1, x.shape[-1])[positions].T.astype(np.float32)
        oh, ow = self._out_hw(x.shape)
        n, rest = np.divmod(positions, oh * ow)
        i, j = np.divmod(rest, ow)
        padded = np.pad(x, ((0, 0), (0, 0), (self.pads[0], self.pads[2]), (self.pads[1], self.pads[3])))
        taps = []
        for di in range(self.kernel[0]):
            for dj in range(self.kernel[1]):
                rows = i * self.strides[0] + di * self.dilations[0]
                cols = j * self.strides[1] + dj * self.dilations[1]
                taps.append(padded[n, :, rows, cols])  # (count, C)
        # unfold's order of K: channel-major, then kernel row, then kernel column
        return np.stack(taps, axis=2).reshape(len(positions), -1).T.astype(np.float32)

    def apply(self, x, matrix):
        """The layer's output without bias for input ``x`` (torch) and ``(out, K)`` weights ``matrix`` (torch)."""
        import torch.nn.functional as F

        if self.kernel is None:
            return x @ matrix.T
        w = matrix.reshape(matrix.shape[0], -1, *self.kernel)
        padded = F.pad(x, (self.pads[1], self.pads[3], self.pads[0], self.pads[2]))
        return F.conv2d(padded, w, stride=self.strides, dilation=self.dilations)


def weighted_layers(model, units: list[QuantUnit]) -> dict[str, WeightedLayer]:
    """A :class:`WeightedLayer` for every unit with weights, by node name."""
    from onnx import numpy_helper

    from rtdeploy.precision.graph import initializers

    inits = initializers(model.graph)
    nodes = {n.name: n for n in model.graph.node}
    out = {}
    for u in units:
        if u.weight is None:
            continue
        w = numpy_helper.to_array(inits[u.weight])
        out[u.node] = _layer(u, nodes[u.node], w)
    return out


def _layer(u: QuantUnit, node, w: np.ndarray) -> WeightedLayer:
    attrs = {a.name: a for a in node.attribute}

    def ints(name, default):
        return tuple(attrs[name].ints) if name in attrs else default

    if u.op_type == "Conv":
        group = attrs["group"].i if "group" in attrs else 1
        ok = w.ndim == 4 and group == 1 and "auto_pad" not in attrs
        return WeightedLayer(u, w, tuple(w.shape[2:]) if w.ndim == 4 else None, ints("strides", (1, 1)),
                             ints("pads", (0, 0, 0, 0)), ints("dilations", (1, 1)), ok)
    if u.op_type == "Gemm":
        trans_a = attrs["transA"].i if "transA" in attrs else 0
        return WeightedLayer(u, w, supported=w.ndim == 2 and not trans_a)
    return WeightedLayer(u, w, supported=w.ndim == 2)
