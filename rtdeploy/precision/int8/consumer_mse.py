"""The ``consumer-mse`` calibrator: clip each activation where its consumers' outputs suffer least.

The histogram calibrators judge a threshold by the tensor's own distribution. What matters is the
error it causes where the tensor is used: the output of the Conv/Gemm that reads it (where a
clipped value's error is spread over many outputs by the weights and errors of neighbouring
values add up, while an input channel the weights ignore costs nothing), or the residual Add it
feeds as shortcut. For each observed tensor this searches the threshold ``t`` (scale ``t / 127``)
minimising

    sum over its consumers u of  || f_u(Q_t(x_u)) - f_u(x_u) ||^2 / || f_u(x_u) ||^2

on calibration images, where ``f_u`` is the consumer's linear part (``W @ columns`` for a weighted
op, the identity for a residual Add) and ``Q_t`` is symmetric int8 quantize-dequantize. Each
consumer's error is relative to its output's energy, so a tensor feeding a Conv and an Add weighs
both alike. Only a seeded sample of output positions is kept per consumer (their input columns),
so memory stays small; the thresholds are searched on a log grid from ``amax / 32`` to ``amax``
(``amax`` from the collected statistics, cached like the other methods' histograms) and refined
by golden-section search around the best grid point.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from rtdeploy.precision.int8.qdq import INT8_MAX

log = logging.getLogger(__name__)

METHOD = "consumer-mse"


@dataclass(frozen=True)
class ConsumerMseConfig:
    """How the search runs.

    Attributes:
        images: calibration images whose activations are sampled.
        columns: output positions sampled per consumer (input columns kept).
        grid: thresholds tried on the log grid.
        refine: golden-section steps after the grid.
        low: the lowest threshold tried, as a fraction of amax.
        seed: seed of the position sample.
    """

    images: int = 128
    columns: int = 4096
    grid: int = 16
    refine: int = 8
    low: float = 1 / 32
    seed: int = 0


def fake_quant(x: np.ndarray, scale: float) -> np.ndarray:
    """Symmetric int8 quantize-dequantize as QuantizeLinear/DequantizeLinear do it (round half to even)."""
    return np.clip(np.rint(x / scale), -128, INT8_MAX) * scale


def search_threshold(cost: Callable[[float], float], high: float, grid: int = 16, refine: int = 8, low: float = 1 / 32) -> float:
    """The threshold in ``[low * high, high]`` minimising ``cost``: a log grid, then golden section
    between the best grid point's neighbours (on a tie the larger threshold wins)."""
    if high <= 0:
        return float(high)
    points = np.exp(np.linspace(math.log(low * high), math.log(high), max(2, grid)))
    costs = [cost(float(t)) for t in points]
    best = min(range(len(points)), key=lambda i: (costs[i], -i))
    a = math.log(points[max(0, best - 1)])
    b = math.log(points[min(len(points) - 1, best + 1)])
    best_t, best_c = float(points[best]), costs[best]
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = cost(math.exp(c)), cost(math.exp(d))
    for _ in range(refine):
        for x, fx in ((c, fc), (d, fd)):
            if fx < best_c:
                best_t, best_c = math.exp(x), fx
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = cost(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = cost(math.exp(d))
    for x, fx in ((c, fc), (d, fd)):
        if fx < best_c:
            best_t, best_c = math.exp(x), fx
    return float(best_t)


class _Consumer:
    """One consumer's sampled input and the error its output takes from a threshold."""

    def __init__(self, layer=None):
        self.layer = layer
        self.parts: list[np.ndarray] = []
        self.matrix = None if layer is None else layer.matrix()

    def add(self, x: np.ndarray, count: int, rng: np.random.Generator) -> None:
        if self.layer is None:
            flat = x.reshape(-1)
            idx = rng.choice(flat.size, size=min(count, flat.size), replace=False)
            self.parts.append(flat[idx].astype(np.float32))
        else:
            self.parts.append(self.layer.sampled_columns(x, self.layer.positions(x.shape, count, rng)))

    def finish(self) -> None:
        self.x = np.concatenate(self.parts, axis=-1)
        self.parts = []
        ref = self.x if self.matrix is None else self.matrix @ self.x
        self.energy = max(float(np.sum(ref.astype(np.float64) ** 2)), 1e-30)

    def error(self, scale: float) -> float:
        e = fake_quant(self.x, scale) - self.x
        if self.matrix is not None:
            e = self.matrix @ e
        return float(np.sum(e.astype(np.float64) ** 2)) / self.energy


def consumer_mse_thresholds(model, plan, amax: dict[str, float], batches: Iterable[np.ndarray],
                            cfg: ConsumerMseConfig = ConsumerMseConfig()) -> dict[str, float]:
    """Thresholds for every tensor of ``plan.observed()``.

    Args:
        model: the FP32 model.
        plan: its Q/DQ plan.
        amax: the largest |x| of each observed tensor over the calibration statistics (upper end of
            the search).
        batches: float32 NCHW image batches; the first ``cfg.images`` images are sampled.
        cfg: the settings.
    """
    from rtdeploy.precision.graph import graph_input_names
    from rtdeploy.precision.int8.collect import augment, make_session
    from rtdeploy.precision.int8.layers import weighted_layers

    layers = weighted_layers(model, plan.units)
    consumers: dict[str, list[tuple[str, _Consumer]]] = {}
    for u in plan.units:
        layer = layers.get(u.node)
        consumer = _Consumer(layer if layer is not None and layer.supported else None)
        consumers.setdefault(u.observe, []).append((u.activation, consumer))
    tensors = list(dict.fromkeys(u.activation for u in plan.units))
    session = make_session(augment(model, tensors))
    input_name = graph_input_names(model.graph)[0]
    rng = np.random.default_rng([cfg.seed, 3])
    left = cfg.images
    for images in batches:
        if left <= 0:
            break
        images = images[:left]
        left -= len(images)
        share = max(1, math.ceil(cfg.columns * len(images) / cfg.images))
        values = dict(zip(tensors, session.run(tensors, {input_name: images})))
        for group in consumers.values():
            for tensor, consumer in group:
                consumer.add(values[tensor], share, rng)
    thresholds = {}
    for observed, group in consumers.items():
        for _, consumer in group:
            consumer.finish()
        high = float(amax[observed])

        def cost(t: float, group=group) -> float:
            scale = t / INT8_MAX
            return sum(c.error(scale) for _, c in group)

        thresholds[observed] = search_threshold(cost, high, cfg.grid, cfg.refine, cfg.low)
    log.info("consumer-mse thresholds for %d tensors on %d images", len(thresholds), cfg.images - max(0, left))
    return thresholds
