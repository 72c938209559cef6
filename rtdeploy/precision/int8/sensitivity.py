"""Per-layer quantization sensitivity, and choosing which layers to keep in floating point.

Measuring a configuration ("these layers int8, those float") by building a Q/DQ model and a new
onnxruntime session for each would cost a session per layer. Instead one *switchable* graph holds
every unit's quantization behind a 0/1 mask fed at run time:

    x_u = x + m_u * (DQ(Q(x)) - x)          (activation of unit u)
    W_u = W + m_u * (DQ(W_int8) - W)        (its weights)

so any set of layers is evaluated by one ``session.run`` with a different mask. With ``m_u = 1``
this is the quantized model (to float rounding), with ``m_u = 0`` the FP32 one.

- **Sensitivity** of a unit: the mean KL divergence between the FP32 model's softmax and that of
  the model where *only that unit* is quantized, on held-out images.
- **Fallback**: keep the ``N`` most sensitive units in float (``keep_fp``), or keep adding them in
  order of sensitivity until the top-1 agreement with FP32 on the held-out images reaches
  ``target_agreement``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np

from rtdeploy.errors import PrecisionError, opt
from rtdeploy.precision.graph import NameMaker, graph_input_names, initializers
from rtdeploy.precision.int8.qdq import QdqPlan, plan_qdq, quantize_weight

log = logging.getLogger(__name__)

MASK_INPUT = "rtdeploy_quant_mask"


@dataclass
class LayerSensitivity:
    """The cost of quantizing one unit alone.

    Attributes:
        node: the node name.
        op_type: its op.
        kl: mean KL(FP32 || only-this-unit-quantized) over the held-out images.
        agreement: top-1 agreement with FP32 with only this unit quantized.
    """

    node: str
    op_type: str
    kl: float
    agreement: float


@dataclass
class FallbackResult:
    """Which units stay in float, and how the model scores with that choice.

    Attributes:
        kept: node names kept in float, most sensitive first.
        agreement: held-out top-1 agreement of the chosen configuration.
        kl: its mean KL divergence.
        trace: (kept count, agreement, kl) per evaluated step.
        ranking: every unit's sensitivity, most sensitive first.
        images: how many held-out images judged it.
    """

    kept: list[str]
    agreement: float
    kl: float
    trace: list[tuple[int, float, float]] = field(default_factory=list)
    ranking: list[LayerSensitivity] = field(default_factory=list)
    images: int = 0


def build_switchable(model, plan: QdqPlan, scales: dict[str, float], weights: dict | None = None):
    """The FP32 model with every unit's quantization behind one mask input (see module docstring).

    ``weights`` (initializer name -> (int8, scales)) replaces round-to-nearest where given.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    names = NameMaker(m)
    inits = initializers(g)
    m.graph.input.append(helper.make_tensor_value_info(MASK_INPUT, TensorProto.FLOAT, [len(plan.units)]))
    before: dict[str, list] = {}
    delta_of: dict[tuple, str] = {}
    extra_inits = []
    by_name = {n.name: n for n in g.node}
    for index, u in enumerate(plan.units):
        nodes = []
        m_u = names(f"mask_{index}")
        idx = names(f"mask_index_{index}")
        extra_inits.append(numpy_helper.from_array(np.array(index, dtype=np.int64), idx))
        nodes.append(helper.make_node("Gather", [MASK_INPUT, idx], [m_u], axis=0))
        key = (u.activation, scales[u.observe])
        if key not in delta_of:
            delta_of[key] = _activation_delta(u.activation, key[1], names, nodes, extra_inits)
        mixed = names(f"{u.activation}_switch_{index}")
        scaled = names(f"{mixed}_delta")
        nodes += [helper.make_node("Mul", [m_u, delta_of[key]], [scaled]),
                  helper.make_node("Add", [u.activation, scaled], [mixed])]
        node = by_name[u.node]
        node.input[u.input_index] = mixed
        if u.weight is not None:
            w = numpy_helper.to_array(inits[u.weight])
            q, s = weights[u.weight] if weights and u.weight in weights else quantize_weight(w, u.axis)
            shape = [1] * w.ndim
            shape[u.axis] = -1
            d = (q.astype(np.float32) * s.reshape(shape) - w).astype(np.float32)
            dn, wd, wm = names(f"{u.weight}_qdelta"), names(f"{u.weight}_qdelta_masked"), names(f"{u.weight}_switch")
            extra_inits.append(numpy_helper.from_array(d, dn))
            nodes += [helper.make_node("Mul", [m_u, dn], [wd]), helper.make_node("Add", [node.input[1], wd], [wm])]
            node.input[1] = wm
        before.setdefault(u.node, []).extend(nodes)
    ordered = []
    for node in g.node:
        ordered.extend(before.get(node.name, []))
        ordered.append(node)
    del g.node[:]
    g.node.extend(ordered)
    g.initializer.extend(extra_inits)
    return m


def _activation_delta(tensor: str, scale: float, names: NameMaker, nodes: list, inits: list) -> str:
    from onnx import helper, numpy_helper

    s, z = names(f"{tensor}_sw_scale"), names(f"{tensor}_sw_zero_point")
    q, dq, delta = names(f"{tensor}_sw_q"), names(f"{tensor}_sw_dq"), names(f"{tensor}_sw_delta")
    inits += [numpy_helper.from_array(np.array(scale, dtype=np.float32), s), numpy_helper.from_array(np.array(0, dtype=np.int8), z)]
    nodes += [helper.make_node("QuantizeLinear", [tensor, s, z], [q]),
              helper.make_node("DequantizeLinear", [q, s, z], [dq]),
              helper.make_node("Sub", [dq, tensor], [delta])]
    return delta


class SwitchableEvaluator:
    """Scores configurations of one switchable model on held-out images.

    Args:
        model: the FP32 model.
        plan: its Q/DQ plan.
        scales: activation scales by observed tensor.
        images: held-out float32 NCHW images.
        batch_size: images per run.
        weights: adaptively rounded weights (see :func:`build_switchable`).
    """

    def __init__(self, model, plan: QdqPlan, scales: dict[str, float], images: np.ndarray, batch_size: int = 64,
                 weights: dict | None = None):
        from rtdeploy.precision.int8.collect import make_session

        self.plan = plan
        self.images = images
        self.batch_size = batch_size
        self.session = make_session(build_switchable(model, plan, scales, weights))
        self.input_name = graph_input_names(model.graph)[0]
        self.output_name = model.graph.output[0].name
        self.reference = self.logits(np.zeros(len(plan.units), dtype=np.float32))
        self.evaluations = 0

    def logits(self, mask: np.ndarray) -> np.ndarray:
        """The first output over all held-out images with quantization ``mask`` (1 = int8)."""
        mask = np.asarray(mask, dtype=np.float32)
        outs = [self.session.run([self.output_name], {self.input_name: self.images[i:i + self.batch_size], MASK_INPUT: mask})[0]
                for i in range(0, len(self.images), self.batch_size)]
        return np.concatenate(outs).reshape(len(self.images), -1)

    def score(self, kept: set[str] | frozenset[str]) -> tuple[float, float]:
        """(top-1 agreement with FP32, mean KL) with every unit quantized except ``kept``."""
        mask = np.array([0.0 if u.node in kept else 1.0 for u in self.plan.units], dtype=np.float32)
        return self._compare(mask)

    def _compare(self, mask: np.ndarray) -> tuple[float, float]:
        self.evaluations += 1
        out = self.logits(mask)
        agreement = float(np.mean(out.argmax(1) == self.reference.argmax(1)))
        return agreement, mean_kl(self.reference, out)

    def rank(self) -> list[LayerSensitivity]:
        """Every unit's sensitivity (quantized alone), most sensitive first."""
        result = []
        for i, u in enumerate(self.plan.units):
            mask = np.zeros(len(self.plan.units), dtype=np.float32)
            mask[i] = 1.0
            agreement, kl = self._compare(mask)
            result.append(LayerSensitivity(u.node, u.op_type, kl, agreement))
        return sorted(result, key=lambda s: (-s.kl, s.agreement))


def mean_kl(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean over rows of KL(softmax(reference) || softmax(candidate)), in nats."""
    lp = _log_softmax(reference.astype(np.float64))
    lq = _log_softmax(candidate.astype(np.float64))
    return float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1)))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def choose_fallback(evaluator: SwitchableEvaluator, *, keep_fp: int = 0, target_agreement: float | None = None) -> FallbackResult:
    """Rank the units and pick which stay in float.

    Args:
        evaluator: over the held-out images.
        keep_fp: keep exactly this many of the most sensitive units (when no target is given).
        target_agreement: keep adding units, most sensitive first, until the held-out top-1
            agreement reaches this fraction (0..1); ``keep_fp`` then sets a minimum. At least
            one unit always stays INT8.

    Returns:
        the chosen units, the score of that configuration, the trace and the ranking.

    Raises:
        PrecisionError: the target is not reached with every unit but one in float (keeping them
            all would make an "INT8" model with no INT8 layer).
    """
    ranking = evaluator.rank()
    order = [s.node for s in ranking]
    count = min(keep_fp, len(order))
    agreement, kl = evaluator.score(set(order[:count]))
    trace = [(count, agreement, kl)]
    if target_agreement is not None:
        while agreement < target_agreement and count < len(order) - 1:
            count += 1
            agreement, kl = evaluator.score(set(order[:count]))
            trace.append((count, agreement, kl))
        if agreement < target_agreement:
            raise PrecisionError(f"{opt('target_agreement')} {target_agreement} is not reached even with {count} of the {len(order)} "
                                 f"quantizable layers in float (held-out agreement {agreement:.4f}), and keeping all would leave no "
                                 f"INT8 layer; give {opt('target_agreement')} {math.floor(agreement * 1e4) / 1e4} or lower, or make an FP16 model")
    log.info("keeping %d layer(s) in float: held-out agreement %.4f", count, agreement)
    return FallbackResult(order[:count], agreement, kl, trace, ranking, len(evaluator.images))


def check_keep_fp(keep_fp: int, layers: int, model_name: str) -> None:
    """``keep_fp`` must leave at least one of the model's ``layers`` quantizable layers in INT8.

    Raises:
        PrecisionError: it keeps them all, which would make an "INT8" model without an INT8 layer.
    """
    if keep_fp >= layers:
        raise PrecisionError(f"{opt('keep_fp')} {keep_fp} would keep all {layers} quantizable layers of {model_name} in float, "
                             f"an INT8 model with no INT8 layer; give {opt('keep_fp')} 0 to {layers - 1}")


def quantizable_layers(onnx_path: Path) -> int:
    """How many layers INT8 quantizes in the FP32 ONNX at ``onnx_path`` (what ``keep_fp`` counts)."""
    from rtdeploy.artifacts import load_onnx_graph

    model = load_onnx_graph(onnx_path)
    if model is None:
        raise PrecisionError(f"{onnx_path} is not an ONNX model; re-export it")
    return len(plan_qdq(model).units)
