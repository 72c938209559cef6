"""Adaptive weight rounding: choose, per weight, rounding up or down to minimise the layer's output error.

Round-to-nearest minimises each weight's own error, not the error of the layer's output, where the
errors of many weights add up and can cancel. AdaRound (Nagel et al., "Up or Down? Adaptive
Rounding for Post-Training Quantization", ICML 2020) poses the choice as a binary quadratic
problem over the calibration data. With ``X`` the layer's input columns in the FP32 model (im2col
for a Conv), ``X~`` the same columns in the quantized model, ``W`` the FP32 weights (``out x K``) and
``W~ = s * (floor(W / s) + b)`` with ``b`` in {0, 1}:

    minimise  || W~ X~ - W X ||^2  =  sum_c  dw_c H dw_c' + 2 dw_c q_c + const

where ``dw = W~ - W``, ``H = X~ X~'``, ``q_c = (X~ (X~ - X)') w_c``. Output channels are independent, so
each channel is its own problem over ``K`` bits. Feeding the *quantized* model's input (``X~``)
lets the rounding also offset the error that earlier layers' quantization left in this layer's
input (AdaRound's "asymmetric" reconstruction).

Solver: the problem only needs the ``K x K`` matrices ``H`` and ``X~ (X~ - X)'``, gathered once from
a few hundred images (a capped random sample of im2col columns). Starting from round-to-nearest,
every channel flips the single weight whose flip lowers its objective most, with the gradient
updated exactly after each flip, until no flip helps (greedy coordinate descent; all channels and
all layers of one shape in parallel). Each accepted flip strictly lowers the objective, so the
result is never worse than round-to-nearest on the calibration data, and it keeps exactly the
per-channel symmetric int8 format and scales (``max|W_c| / 127``) that TensorRT reads. This
solves AdaRound's objective; it does not use AdaRound's continuous relaxation (sigmoid + annealed
regulariser), which needs thousands of gradient steps per layer -- beyond a minute on two cores.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from rtdeploy.precision.int8.layers import WeightedLayer
from rtdeploy.precision.int8.qdq import INT8_MAX
from rtdeploy.precision.int8.soft_rounding import annealed_beta, initial_v, rectified_sigmoid, rounding_penalty

log = logging.getLogger(__name__)

DEFAULT_IMAGES = 256
DEFAULT_COLUMNS = 16384


@dataclass(frozen=True)
class AdaRoundConfig:
    """How adaptive rounding runs.

    Attributes:
        images: calibration images used to estimate each layer's input statistics.
        columns: at most this many input columns per layer (a seeded random sample of im2col columns).
        quantized_inputs: take the layer inputs from the quantized model (True) or the FP32 one.
        max_sweeps: cap on flips per channel, as a multiple of the channel's weight count.
        seed: seed of the column sample.
    """

    images: int = DEFAULT_IMAGES
    columns: int = DEFAULT_COLUMNS
    quantized_inputs: bool = False
    max_sweeps: float = 1.0
    seed: int = 0


@dataclass
class Moments:
    """Second moments of one layer's input columns (float64, divided by the column count).

    Attributes:
        h: ``X~ X~'`` (K x K).
        p: ``X~ (X~ - X)'`` (K x K); zero when the inputs are the FP32 ones.
        columns: how many columns were summed.
    """

    h: np.ndarray
    p: np.ndarray
    columns: int = 0


@dataclass
class RoundingResult:
    """Adaptive rounding of every supported layer.

    Attributes:
        weights: weight initializer name -> (int8 weights in the stored layout, float32 per-channel scales).
        layers: per node: output error of nearest and adaptive rounding (relative to the layer's
            output energy on the calibration columns) and how many weights flipped.
        skipped: nodes left to round-to-nearest (unsupported layer kind).
        images: calibration images the layer inputs came from.
    """

    weights: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    layers: dict[str, dict] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    images: int = 0


def collect_moments(layers: dict[str, WeightedLayer], batches: Iterable[tuple[dict, dict]], images: int,
                    columns: int = DEFAULT_COLUMNS, seed: int = 0) -> dict[str, Moments]:
    """Accumulate :class:`Moments` per layer over a random sample of input columns.

    Args:
        layers: by node name.
        batches: per batch, (FP32 inputs by node, quantized-model inputs by node); the second may be
            empty for FP32 inputs only. Arrays are batch first.
        images: the total number of images the batches hold (to spread the column sample evenly).
        columns: at most this many columns per layer.
        seed: seed of the column sample.
    """
    rng = np.random.default_rng([seed, 2])
    acc: dict[str, list] = {}
    for fp_inputs, q_inputs in batches:
        for node, layer in layers.items():
            x = fp_inputs[node]
            take = max(1, int(np.ceil(columns * len(x) / max(1, images))))
            pos = layer.positions(x.shape, take, rng)
            cx = layer.sampled_columns(x, pos)
            cq = layer.sampled_columns(q_inputs[node], pos) if node in q_inputs else None
            h = (cx @ cx.T if cq is None else cq @ cq.T).astype(np.float64)
            p = np.zeros_like(h) if cq is None else (cq @ (cq - cx).T).astype(np.float64)
            if node in acc:
                acc[node][0] += h
                acc[node][1] += p
                acc[node][2] += cx.shape[1]
            else:
                acc[node] = [h, p, cx.shape[1]]
    return {n: Moments(h / c, p / c, int(c)) for n, (h, p, c) in acc.items()}


def round_layers(layers: dict[str, WeightedLayer], moments: dict[str, Moments], max_sweeps: float = 1.0) -> RoundingResult:
    """Adaptive rounding of every layer that has moments; layers of equal shape are solved together."""
    result = RoundingResult()
    groups: dict[tuple, list[str]] = {}
    for node, layer in layers.items():
        if node not in moments or not layer.supported:
            result.skipped.append(node)
            continue
        groups.setdefault(layer.matrix().shape, []).append(node)
    for shape, nodes in groups.items():
        w = np.stack([layers[n].matrix() for n in nodes]).astype(np.float64)
        h = np.stack([moments[n].h for n in nodes])
        p = np.stack([moments[n].p for n in nodes])
        q, scales, stats = solve_group(w, h, p, max_sweeps)
        for i, n in enumerate(nodes):
            layer = layers[n]
            result.weights[layer.unit.weight] = (layer.to_weight(q[i]).astype(np.int8), scales[i].astype(np.float32))
            result.layers[n] = {k: v[i] for k, v in stats.items()}
        log.info("adaptive rounding: %d layer(s) of shape %s", len(nodes), shape)
    return result


def solve_group(w: np.ndarray, h: np.ndarray, p: np.ndarray, max_sweeps: float = 1.0, start: np.ndarray | None = None):
    """Greedy flips for ``L`` layers of one shape.

    Args:
        w: FP32 weights, (L, C, K).
        h: ``X~ X~'`` per layer, (L, K, K).
        p: ``X~ (X~ - X)'`` per layer, (L, K, K).
        max_sweeps: at most ``max_sweeps * K`` flips per channel.
        start: (L, C, K) int weights (each the floor or the ceiling) to start from instead of
            round-to-nearest; the statistics still compare with nearest.

    Returns:
        (int weights (L, C, K), scales (L, C), per-layer stats: ``nearest_error`` and
        ``adaround_error`` (the objective relative to the layer's output energy ``w H w'``) and
        ``flipped`` (weights not rounded to nearest)).
    """
    w32 = w.astype(np.float32)
    amax = np.abs(w32).max(axis=2, keepdims=True)
    s32 = np.where(amax > 0, amax / INT8_MAX, 1.0).astype(np.float32)  # (L, C, 1), as quantize_weight
    scaled = w32 / s32  # in float32 like quantize_weight, so that "nearest" is exactly what it writes
    low = np.floor(scaled).astype(np.float64)
    nearest = np.rint(scaled).astype(np.float64)
    w, s = w.astype(np.float64), s32.astype(np.float64)
    up = (nearest if start is None else start) > low  # rounded up (to low + 1)
    no_up = low + 1 > INT8_MAX
    Q = w @ p.transpose(0, 2, 1)  # rows q_c = P w_c
    dw = (low + up) * s - w
    G = dw @ h + Q  # half the objective's gradient
    first = _objective(dw, h, Q)
    start = _objective(nearest * s - w, h, Q)
    diag = np.diagonal(h, axis1=1, axis2=2)[:, None, :]  # (L, 1, K)
    L, C, K = w.shape
    li, ci = np.arange(L)[:, None], np.arange(C)[None, :]
    tol = 1e-12 * (np.abs(first)[:, None] + 1e-30)
    for _ in range(int(max(1, max_sweeps * K))):
        delta = np.where(up, -s, s)
        gain = delta * (2 * G + delta * diag)
        gain[~up & no_up] = np.inf
        j = gain.argmin(axis=2)
        best = gain[li, ci, j]
        active = best < -tol
        if not active.any():
            break
        d = np.where(active, delta[li, ci, j], 0.0)
        up[li, ci, j] ^= active
        G += d[:, :, None] * h[li, j]
    q = low + up
    dw = q * s - w
    energy = np.maximum(np.einsum("lck,lkm,lcm->l", w, h, w), 1e-30)
    end = _objective(dw, h, Q)
    stats = {"nearest_error": start / energy, "adaround_error": end / energy, "flipped": (q != nearest).sum(axis=(1, 2))}
    return q, s[:, :, 0], stats


def solve_group_relaxed(w: np.ndarray, h: np.ndarray, p: np.ndarray, iters: int = 1000, lr: float = 0.01, reg: float = 0.01,
                        beta: tuple[float, float] = (20.0, 2.0), warmup: float = 0.2, start: np.ndarray | None = None):
    """AdaRound's continuous relaxation of the same objective as :func:`solve_group`.

    Each weight is ``s * (floor(W / s) + h(V))`` with the rectified sigmoid
    ``h(V) = clip(sigmoid(V) * 1.2 - 0.1, 0, 1)``, ``V`` started where ``h`` equals the weight's
    fractional part (or, with ``start``, at 0.75 / 0.25 toward that rounding). Adam minimises
    ``sum_c dw_c H dw_c' + 2 dw_c q_c`` (per output position, as :func:`solve_group`) plus
    ``reg * sum(1 - |2h - 1|^beta)`` with ``beta`` annealed linearly from ``beta[0]`` to ``beta[1]``
    after ``warmup`` of the steps; then ``h >= 0.5`` rounds up. The result is kept per channel only
    where its objective is below round-to-nearest's (so never worse than nearest).

    Args and returns as :func:`solve_group`; ``start``: (L, C, K) int weights to start toward.
    """
    import torch

    w32 = w.astype(np.float32)
    amax = np.abs(w32).max(axis=2, keepdims=True)
    s32 = np.where(amax > 0, amax / INT8_MAX, 1.0).astype(np.float32)
    scaled = w32 / s32
    low = np.floor(scaled).astype(np.float64)
    nearest = np.rint(scaled).astype(np.float64)
    no_up = low + 1 > INT8_MAX
    wd, s = w.astype(np.float64), s32.astype(np.float64)
    Q = wd @ p.transpose(0, 2, 1)
    energy = np.maximum(np.einsum("lck,lkm,lcm->l", wd, h, wd), 1e-30)
    if start is None:
        frac = np.clip(scaled - np.floor(scaled), 0.01, 0.99)
    else:
        frac = np.where(start > low, 0.75, 0.25)
    frac = np.where(no_up, 0.01, frac)
    v = torch.nn.Parameter(torch.from_numpy(initial_v(frac)))
    th, tq = torch.from_numpy(h), torch.from_numpy(Q)
    tw, ts, tlow = torch.from_numpy(wd), torch.from_numpy(s), torch.from_numpy(low)
    cap = torch.from_numpy((~no_up).astype(np.float64))
    opt = torch.optim.Adam([v], lr=lr)
    for it in range(iters):
        hh = rectified_sigmoid(v) * cap
        dw = (tlow + hh) * ts - tw
        loss = ((dw @ th) * dw + 2 * dw * tq).sum()  # per output position, summed over channels, as AdaRound's MSE
        b = annealed_beta(it, iters, warmup, beta)
        if b is not None:
            loss = loss + reg * rounding_penalty(hh, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    up = (v.detach().numpy() >= 0) & ~no_up
    q = low + up
    per_channel = lambda ints: np.einsum("lck,lkm,lcm->lc", ints * s - wd, h, ints * s - wd) + 2 * ((ints * s - wd) * Q).sum(axis=2)  # noqa: E731
    better = per_channel(q) < per_channel(nearest)
    q = np.where(better[:, :, None], q, nearest)
    dw_n, dw_q = nearest * s - wd, q * s - wd
    stats = {"nearest_error": _objective(dw_n, h, Q) / energy, "adaround_error": _objective(dw_q, h, Q) / energy,
             "flipped": (q != nearest).sum(axis=(1, 2))}
    return q, s[:, :, 0], stats


def _objective(dw, h, Q):
    """Per layer: sum_c dw_c H dw_c' + 2 dw_c q_c (the output error up to a constant)."""
    return ((dw @ h) * dw).sum(axis=(1, 2)) + 2 * (dw * Q).sum(axis=(1, 2))


def adaround_weights(model, plan, scales: dict[str, float], batches: Iterable[np.ndarray], cfg: AdaRoundConfig = AdaRoundConfig()) -> RoundingResult:
    """Adaptive rounding of the weighted layers of ``model`` on calibration ``batches``.

    Args:
        model: the FP32 model.
        plan: its Q/DQ plan.
        scales: activation scales by observed tensor (to build the quantized model whose inputs
            the rounding sees when ``cfg.quantized_inputs``).
        batches: float32 NCHW image batches; the first ``cfg.images`` images are used.
        cfg: the settings.
    """
    from rtdeploy.precision.int8.layers import weighted_layers

    all_layers = weighted_layers(model, plan.units)
    layers = {n: l for n, l in all_layers.items() if l.supported}
    runner = _InputRunner(model, plan, scales, layers, cfg.quantized_inputs)
    seen = 0

    def feed():
        nonlocal seen
        for images in take_images(batches, cfg.images):
            seen += len(images)
            yield runner.run(images)

    moments = collect_moments(layers, feed(), cfg.images, cfg.columns, cfg.seed) if layers else {}
    result = round_layers(layers, moments, cfg.max_sweeps)
    result.skipped += [n for n, l in all_layers.items() if not l.supported]
    result.images = seen
    log.info("adaptive rounding of %d layer(s) on %d images", len(result.layers), seen)
    return result


def take_images(batches: Iterable[np.ndarray], limit: int):
    """The batches cut to their first ``limit`` images in all."""
    left = limit
    for images in batches:
        if left <= 0:
            return
        yield images[:left]
        left -= len(images[:left])


class _InputRunner:
    """Runs a batch through the FP32 model (and the quantized one) and returns each layer's input."""

    def __init__(self, model, plan, scales: dict[str, float], layers: dict[str, WeightedLayer], quantized: bool):
        from rtdeploy.precision.graph import graph_input_names
        from rtdeploy.precision.int8.collect import augment, make_session
        from rtdeploy.precision.int8.qdq import insert_qdq

        self.input_name = graph_input_names(model.graph)[0]
        self.fp_names = {n: l.unit.activation for n, l in layers.items()}
        self.fp = make_session(augment(model, list(dict.fromkeys(self.fp_names.values()))))
        self.q = None
        if quantized:
            qmodel = insert_qdq(model, plan, {t: scales[t] for t in plan.observed()})
            by_name = {node.name: node for node in qmodel.graph.node}
            self.q_names = {n: by_name[n].input[layers[n].unit.input_index] for n in layers}
            self.q = make_session(augment(qmodel, list(dict.fromkeys(self.q_names.values()))))

    def run(self, images: np.ndarray) -> tuple[dict, dict]:
        """(FP32 inputs by node, quantized-model inputs by node) for one batch."""
        fp = self._outputs(self.fp, self.fp_names, images)
        q = self._outputs(self.q, self.q_names, images) if self.q is not None else {}
        return fp, q

    def _outputs(self, session, names: dict[str, str], images: np.ndarray) -> dict:
        tensors = list(dict.fromkeys(names.values()))
        values = dict(zip(tensors, session.run(tensors, {self.input_name: images})))
        return {n: values[t] for n, t in names.items()}
