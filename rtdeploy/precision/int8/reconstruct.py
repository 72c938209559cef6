"""Block reconstruction: choose the weight rounding of each residual block against the block's output.

AdaRound (:mod:`rtdeploy.precision.int8.adaround`) chooses each layer's rounding against that
layer's own output. In a residual network the error that reaches the classifier is the error of
each block's *output*: the residual sum, re-quantized where the next block reads it. BRECQ (Li et
al., ICLR 2021) and QDrop (Wei et al., ICLR 2022) therefore optimise the rounding of all weights of
a block together, against the FP32 block output. Here, per block, in graph order:

- the block's input comes from the quantized model built so far (blocks before it already
  rounded), mixed element-wise with the FP32 input with probability ``drop`` (QDrop: the rounding
  then neither ignores nor over-fits the error the earlier blocks left);
- every activation the plan quantizes inside the block is fake-quantized with its calibrated scale
  (straight-through gradients), and so is the block's output with the scale its consumers read it
  with (the re-quantized residual sum);
- each weight is ``s * (floor(W / s) + h(V))`` with AdaRound's rectified sigmoid ``h`` and one
  parameter ``V`` per weight, started at the weight's fractional part; Adam minimises the squared
  error of the block output plus ``reg * sum(1 - |2h - 1|^beta)``, ``beta`` annealed from 20 to 2 after
  a warm-up, which drives every ``h`` to 0 or 1;
- the hard rounding (``h >= 0.5``) is kept only if it lowers the block's loss on the calibration
  images below round-to-nearest's; otherwise the block keeps nearest (never worse than nearest on
  the calibration objective).

The format TensorRT reads is unchanged: per-channel symmetric int8 weights with scales
``max|W_c| / 127``, each weight its floor or its ceiling; activation scales as calibrated.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from rtdeploy.precision.int8.adaround import RoundingResult, take_images
from rtdeploy.machine import torch_threads
from rtdeploy.progress import bar
from rtdeploy.precision.int8.fixed_batch import fixed_batch_of
from rtdeploy.precision.int8.qdq import INT8_MAX, QdqPlan, quantize_weight
from rtdeploy.precision.int8.soft_rounding import annealed_beta, initial_v, rectified_sigmoid, rounding_penalty
from rtdeploy.precision.int8.torch_graph import TorchGraph, Unsupported, fake_quant

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ReconstructConfig:
    """How block reconstruction runs.

    Attributes:
        images: calibration images used (their activations are held in memory per block).
        iters: Adam steps per block.
        batch: images per step.
        lr: Adam's learning rate for the rounding parameters.
        reg: weight of the rounding regulariser.
        beta: the regulariser's exponent, annealed from the first to the second value.
        warmup: fraction of the steps before the regulariser starts.
        drop: probability that an input element of the block is taken from the FP32 model instead
            of the quantized one (0: quantized inputs only; 1: FP32 inputs only).
        output_quant: include the quantization of the block's output in the loss.
        learn_scales: also optimise the scales of the activations the block quantizes (its
            inner ones and its output's; log-scale parameters, as LSQ learns step sizes).
        scale_lr: Adam's learning rate for the log-scales.
        threads: torch threads while it runs.
        seed: seed of the batch order and of the drop mask.
    """

    images: int = 128
    iters: int = 100
    batch: int = 8
    lr: float = 1e-2
    reg: float = 0.01
    beta: tuple[float, float] = (20.0, 2.0)
    warmup: float = 0.2
    drop: float = 0.5
    output_quant: bool = True
    learn_scales: bool = False
    scale_lr: float = 1e-3
    seed: int = 0
    threads: int = 1


@dataclass(frozen=True)
class Block:
    """A run of graph steps from one cut tensor to the next.

    Attributes:
        start, stop: the steps ``start:stop`` of the :class:`TorchGraph`.
        input: the tensor the block reads (everything else it reads is a constant).
        output: the tensor it writes that the rest of the graph reads.
        nodes: the weighted nodes of the plan inside the block.
    """

    start: int
    stop: int
    input: str
    output: str
    nodes: tuple[str, ...]


@dataclass
class ReconstructResult(RoundingResult):
    """:class:`RoundingResult` with per-block records, the activation scales (changed only with
    ``learn_scales``), and why another method was used instead (``fallback``), if it was."""

    blocks: list[dict] = field(default_factory=list)
    scales: dict[str, float] = field(default_factory=dict)
    fallback: str | None = None


def find_blocks(graph: TorchGraph, plan: QdqPlan) -> list[Block]:
    """Split the graph at its cut tensors (the only live tensor between two steps) into blocks,
    each ending after a residual Add (and the single-input ops right after it) or a weighted op.

    A ResNet splits into the stem, one block per residual block, and the classifier head.
    """
    cuts = _cut_points(graph)
    weighted = {u.node for u in plan.units if u.weight is not None}
    adds = {u.node for u in plan.units if u.op_type == "Add"}
    steps = graph.steps
    blocks, start, inp = [], 0, graph.input
    for i, (stop, tensor) in enumerate(cuts):
        names = {s.name for s in steps[start:stop]}
        has_unit = bool(names & (weighted | adds))
        nxt = cuts[i + 1][0] if i + 1 < len(cuts) else None
        follows = nxt is not None and all(_is_unary(s) for s in steps[stop:nxt]) and not ({s.name for s in steps[stop:nxt]} & weighted)
        if has_unit and not follows or nxt is None:
            blocks.append(Block(start, stop, inp, tensor, tuple(s.name for s in steps[start:stop] if s.name in weighted)))
            start, inp = stop, tensor
    return blocks


def _is_unary(step) -> bool:
    return step.op in ("Relu", "Clip", "MaxPool", "AveragePool", "Identity")


def _cut_points(graph: TorchGraph) -> list[tuple[int, str]]:
    """(step index after which, tensor) for each point where a single tensor carries everything on."""
    last_use: dict[str, int] = {}
    for i, s in enumerate(graph.steps):
        for t in s.inputs:
            if t and t not in graph.const:
                last_use[t] = i
    for t in graph.outputs:
        last_use[t] = len(graph.steps)
    live = {graph.input}
    cuts = []
    for i, s in enumerate(graph.steps):
        live |= {o for o in s.outputs if o in last_use}
        live = {t for t in live if last_use.get(t, -1) > i}
        if len(live) == 1:
            cuts.append((i + 1, next(iter(live))))
    if not cuts or cuts[-1][0] != len(graph.steps):
        cuts.append((len(graph.steps), graph.outputs[0]))
    return cuts


def reconstruct(model, plan: QdqPlan, scales: dict[str, float], batches: Iterable[np.ndarray],
                cfg: ReconstructConfig = ReconstructConfig(), start: dict | None = None, *,
                progress: bool = False) -> ReconstructResult:
    """Block reconstruction of the weight rounding of every weighted layer of ``model``.

    Args:
        model: the FP32 model (nodes named).
        plan: its Q/DQ plan.
        scales: activation scale per observed tensor.
        batches: float32 image batches; the first ``cfg.images`` images are used.
        cfg: the settings.
        start: weight initializer -> (int8, scales) to fall back to instead of round-to-nearest
            (e.g. the greedy AdaRound result).
        progress: a bar over the blocks on stderr.
    """
    import torch

    # One thread by default: the steps are small (a few images of one block), and with more threads
    # than free cores torch's pool spends its time waiting (the whole ResNet-56 calibration took 386
    # CPU-s with two threads on the loaded 2-core machine; its reconstruction takes about 40 on one).
    with torch_threads(cfg.threads):
        return _reconstruct(model, plan, scales, batches, cfg, start or {}, progress)


def _reconstruct(model, plan: QdqPlan, scales: dict[str, float], batches, cfg: ReconstructConfig, start: dict,
                 progress: bool) -> ReconstructResult:
    import torch

    from rtdeploy.precision.int8.layers import weighted_layers

    graph = TorchGraph(model)
    layers = weighted_layers(model, plan.units)
    tensor_scale = {t: float(scales[t]) for t in plan.observed()}
    images = torch.from_numpy(np.concatenate(list(take_images(batches, cfg.images))).astype(np.float32))
    fixed = fixed_batch_of(model)
    if fixed is not None:
        # The graph may bake its batch into constants (a Reshape to (B, -1)): every pass takes exactly B.
        if len(images) < fixed:
            raise Unsupported(f"the model takes batches of exactly {fixed} and only {len(images)} calibration images are left")
        images = images[:len(images) // fixed * fixed]
        cfg = replace(cfg, batch=fixed)
    gen = torch.Generator().manual_seed(cfg.seed)
    result = ReconstructResult(images=len(images))
    x_fp, x_q = images, images
    blocks = find_blocks(graph, plan)
    with bar(len(blocks), progress, "block reconstruction", unit="block") as shown:
        for block in blocks:
            t0, c0 = time.perf_counter(), time.process_time()
            y_fp = _run_block(graph, block, x_fp, {}, {}, fixed or 64)
            base = {n: start.get(layers[n].unit.weight) for n in block.nodes}
            base = {n: v if v is not None else quantize_weight(layers[n].weight, layers[n].unit.axis) for n, v in base.items()}
            ctx = _BlockContext(graph, block, plan, layers, tensor_scale, cfg, chunk=fixed or 64)
            rounded, x_q, record = ctx.reconstruct(x_fp, x_q, y_fp, base, gen)
            for n, (q, s) in rounded.items():
                result.weights[layers[n].unit.weight] = (q, s)
            x_fp = y_fp
            record["seconds"] = round(time.perf_counter() - t0, 3)
            record["cpu_seconds"] = round(time.process_time() - c0, 3)
            result.blocks.append(record)
            log.info("block %s: loss %.4g (start %.4g), %.2f s", block.output, record["loss"], record["loss_start"], record["seconds"])
            shown.update(1)
    result.scales = tensor_scale
    return result


def _run_block(graph, block, x, act, weights, batch: int = 64):
    import torch

    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            env = graph.run({block.input: x[i:i + batch]}, block.start, block.stop, act, weights)
            outs.append(env[block.output])
    return torch.cat(outs)


def _dequant(layers, rounded: dict) -> dict:
    import torch

    out = {}
    for n, (q, s) in rounded.items():
        layer = layers[n]
        shape = [1] * q.ndim
        shape[layer.unit.axis] = -1
        out[n] = torch.from_numpy(q.astype(np.float32) * s.reshape(shape))
    return out


def _error(out, target):
    """Squared error summed over channels (axis 1), one value per image and position (BRECQ's loss)."""
    return ((out - target) ** 2).sum(1)


class _SoftRounding:
    """AdaRound's rectified-sigmoid rounding of one layer's weights."""

    def __init__(self, layer):
        import torch

        w = layer.weight.astype(np.float32)
        _, s = quantize_weight(w, layer.unit.axis)
        shape = [1] * w.ndim
        shape[layer.unit.axis] = -1
        s = s.reshape(shape)
        self.scale = torch.from_numpy(s)
        self.low = torch.from_numpy(np.floor(w / s))
        frac = np.clip(w / s - np.floor(w / s), 0.01, 0.99)
        self.v = torch.nn.Parameter(torch.from_numpy(initial_v(frac).astype(np.float32)))
        self.axis = layer.unit.axis

    def h(self):
        return rectified_sigmoid(self.v)

    def soft(self):
        import torch

        return torch.clamp(self.low + self.h(), -128, INT8_MAX) * self.scale

    def hard(self) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.no_grad():
            q = torch.clamp(self.low + (self.v >= 0).float(), -128, INT8_MAX)
        return q.numpy().astype(np.int8), self.scale.reshape(-1).numpy().astype(np.float32)

    def reg(self, beta: float):
        return rounding_penalty(self.h(), beta)


class _BlockContext:
    """One block's quantizers: its units' activation scales (learnable ones as log-scale parameters)
    and the scale its output is re-quantized with."""

    def __init__(self, graph, block, plan, layers, tensor_scale: dict[str, float], cfg: ReconstructConfig, chunk: int = 64):
        import torch

        self.graph, self.block, self.layers, self.cfg, self.chunk = graph, block, layers, cfg, chunk
        self.tensor_scale = tensor_scale
        names = {s.name for s in graph.steps[block.start:block.stop]}
        produced = {o for s in graph.steps[block.start:block.stop] for o in s.outputs}
        self.units = {(u.node, u.input_index): u.observe for u in plan.units if u.node in names}
        readers = [u for u in plan.units if u.activation == block.output and u.observe == block.output]
        self.output = block.output if readers and cfg.output_quant else None
        learn = {t for t in self.units.values() if t in produced} | ({self.output} if self.output else set())
        if not cfg.learn_scales:
            learn = set()
        self.log_scale = {t: torch.nn.Parameter(torch.tensor(math.log(tensor_scale[t]))) for t in sorted(learn)}

    def scale(self, tensor: str):
        import torch

        if tensor in self.log_scale:
            return self.log_scale[tensor].exp()
        return torch.tensor(self.tensor_scale[tensor], dtype=torch.float32)

    def run(self, x, weights):
        act = {k: self.scale(t) for k, t in self.units.items()}
        y = self.graph.run({self.block.input: x}, self.block.start, self.block.stop, act, weights)[self.block.output]
        return y, (fake_quant(y, self.scale(self.output)) if self.output else y)

    def evaluate(self, x_q, y_fp, weights):
        """(mean loss, block outputs) of ``weights`` on all calibration images."""
        import torch

        errors, outs, batch = [], [], self.chunk
        with torch.no_grad():
            for i in range(0, len(x_q), batch):
                y, yq = self.run(x_q[i:i + batch], weights)
                errors.append(_error(yq, y_fp[i:i + batch]).reshape(-1))
                outs.append(y)
        return float(torch.cat(errors).double().mean()), torch.cat(outs)

    def reconstruct(self, x_fp, x_q, y_fp, base: dict, gen):
        """(chosen rounding by node, the block's quantized outputs, record)."""
        import torch

        cfg, layers = self.cfg, self.layers
        record = {"output": self.block.output, "nodes": list(self.block.nodes)}
        start_scales = {t: self.tensor_scale[t] for t in self.log_scale}
        start_loss, start_out = self.evaluate(x_q, y_fp, _dequant(layers, base))
        record["loss_start"] = start_loss
        if not self.block.nodes and not self.log_scale:
            record["loss"], record["kept"] = start_loss, "nothing to optimize"
            return dict(base), start_out, record
        soft = {n: _SoftRounding(layers[n]) for n in self.block.nodes}
        groups = [{"params": [r.v for r in soft.values()], "lr": cfg.lr}]
        if self.log_scale:
            groups.append({"params": list(self.log_scale.values()), "lr": cfg.scale_lr})
        opt = torch.optim.Adam(groups)
        n = len(x_q)
        for it in range(cfg.iters):
            idx = torch.randint(0, n, (min(cfg.batch, n),), generator=gen)
            x = x_q[idx]
            if cfg.drop > 0:
                x = torch.where(torch.rand(x.shape, generator=gen) < cfg.drop, x_fp[idx], x)
            _, out = self.run(x, {k: r.soft() for k, r in soft.items()})
            loss = _error(out, y_fp[idx]).mean()
            beta = annealed_beta(it, cfg.iters, cfg.warmup, cfg.beta)
            if beta is not None and soft:
                loss = loss + cfg.reg * sum(r.reg(beta) for r in soft.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
        hard = {k: r.hard() for k, r in soft.items()}
        for t, p in self.log_scale.items():
            self.tensor_scale[t] = float(np.float32(p.detach().exp()))
        loss, out = self.evaluate(x_q, y_fp, _dequant(layers, hard))
        if loss >= start_loss:
            self.tensor_scale.update(start_scales)
            record.update(loss=start_loss, loss_tried=loss, kept="start")
            return dict(base), start_out, record
        record["loss"] = loss
        record["kept"] = "reconstructed"
        record["flipped"] = int(sum((hard[k][0] != base[k][0]).sum() for k in hard))
        if self.log_scale:
            record["scales"] = {t: [start_scales[t], self.tensor_scale[t]] for t in self.log_scale}
        return hard, out, record
