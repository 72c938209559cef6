"""The INT8 methods that need the model and images, not only activation statistics.

``--weights adaround`` (adaptive weight rounding, :mod:`rtdeploy.precision.int8.adaround`),
``--weights block`` (block reconstruction, :mod:`rtdeploy.precision.int8.reconstruct`) and
``--method consumer-mse`` (thresholds by the error of each tensor's consumers,
:mod:`rtdeploy.precision.int8.consumer_mse`), called from :mod:`rtdeploy.precision.int8_stage` on
the statistics part of the calibration split (never the held-out part), and what they add to the
manifest.
"""

from __future__ import annotations

import logging

import numpy as np

from rtdeploy.precision.int8.adaround import AdaRoundConfig, RoundingResult
from rtdeploy.precision.int8.consumer_mse import ConsumerMseConfig
from rtdeploy.precision.int8.reconstruct import ReconstructConfig, ReconstructResult

log = logging.getLogger(__name__)

ADAROUND = AdaRoundConfig()
CONSUMER_MSE = ConsumerMseConfig()
RECONSTRUCT = ReconstructConfig()


# ``--weights auto`` (the default): the best rounding measured on held-out calibration images
# (benchmarks/int8_reconstruct.py) whose extra work fits the budget. The budget is what block
# reconstruction costs on ResNet-56 (0.125 GMAC per 32x32 image: 128 images through each block three
# times, 100 steps of 8 images forward and backward), where the whole calibration of 1,000 images was
# measured to fit a minute on this project's 2-core machine; a model costing more per image gets the
# next method that fits. Fewer calibration images than AUTO_MIN_IMAGES keep round-to-nearest: the
# adaptive methods fit their rounding to the images they see.
AUTO_BUDGET_GMACS = 360.0
AUTO_MIN_IMAGES = 128


def auto_weights(model, plan, images: int, cfg) -> tuple[str, str]:
    """The rounding ``--weights auto`` stands for, and why (one line for the manifest and report)."""
    if cfg.weights != "auto":
        return cfg.weights, "asked for"
    if cfg.from_trt_cache is not None:
        return "nearest", "scales from a TensorRT cache: no calibration images"
    if images < AUTO_MIN_IMAGES:
        return "nearest", f"{images} calibration images (< {AUTO_MIN_IMAGES}: too few to fit a rounding to)"
    gmacs = weighted_gmacs(model, plan)
    r, a = RECONSTRUCT, ADAROUND
    costs = {"block": gmacs * 3 * (min(images, r.images) + r.iters * r.batch), "adaround": gmacs * min(images, a.images)}
    for method, cost in costs.items():
        if cost <= AUTO_BUDGET_GMACS:
            return method, f"{cost:.0f} GMAC of extra work (budget {AUTO_BUDGET_GMACS:.0f})"
    return "nearest", f"adaptive rounding would cost {costs['adaround']:.0f} GMAC (budget {AUTO_BUDGET_GMACS:.0f})"


def weighted_gmacs(model, plan) -> float:
    """Multiply-accumulates per image of the plan's weighted layers, in billions (from shape inference;
    a layer whose output shape is unknown counts as 0)."""
    from onnx import numpy_helper

    from rtdeploy.precision.graph import elements_per_sample, initializers

    inits, nodes = initializers(model.graph), {n.name: n for n in model.graph.node}
    total = 0
    for u in plan.units:
        if u.weight is None:
            continue
        w = numpy_helper.to_array(inits[u.weight])
        total += elements_per_sample(model, [nodes[u.node].output[0]]) * (w.size // max(1, w.shape[u.axis]))
    return total / 1e9


def _batch(parent, tensors: list[str]) -> int:
    from rtdeploy.precision.int8.collect import batch_size_for

    return max(1, min(64, batch_size_for(parent.model, tensors)))


def adaptive_rounding(parent, plan, scales: dict[str, float], split, cfg: AdaRoundConfig = ADAROUND) -> RoundingResult:
    """AdaRound's objective for every supported weighted layer, on the first ``cfg.images``
    images of the statistics part of ``split``."""
    from rtdeploy.precision.int8.adaround import adaround_weights

    tensors = [u.activation for u in plan.units if u.weight is not None]
    batches = split.stats_batches(_batch(parent, tensors))
    return adaround_weights(parent.model, plan, scales, batches, cfg)


def block_reconstruction(parent, plan, scales: dict[str, float], split, cfg: ReconstructConfig | None = None) -> RoundingResult:
    """Block reconstruction of every weighted layer's rounding on the first ``cfg.images`` images of
    the statistics part of ``split``. A graph with an op the torch form cannot run falls back to
    :func:`adaptive_rounding` (logged, and recorded as ``fallback`` in the result's ``blocks``)."""
    from rtdeploy.precision.int8.reconstruct import reconstruct
    from rtdeploy.precision.int8.torch_graph import Unsupported

    try:
        return reconstruct(parent.model, plan, scales, split.stats_batches(64), cfg or RECONSTRUCT)
    except Unsupported as e:
        log.warning("block reconstruction cannot run this graph (%s); using --weights adaround instead", e)
        from rtdeploy.precision.int8.reconstruct import ReconstructResult

        greedy = adaptive_rounding(parent, plan, scales, split)
        return ReconstructResult(**vars(greedy), fallback=f"adaround: {e}")


def consumer_mse_scales(parent, plan, stats: dict, split, cfg: ConsumerMseConfig = CONSUMER_MSE) -> dict[str, float]:
    """Thresholds for every tensor in ``stats``: consumer-mse for the plan's observed tensors, the
    ``mse`` calibrator for any other (only a TensorRT cache asks for those)."""
    from rtdeploy.precision.int8.calibrators import compute_thresholds
    from rtdeploy.precision.int8.consumer_mse import consumer_mse_thresholds

    observed = plan.observed()
    others = {t: s for t, s in stats.items() if t not in set(observed)}
    thresholds = compute_thresholds(others, "mse") if others else {}
    for t in observed:
        if not np.isfinite(stats[t].amax):
            from rtdeploy.errors import PrecisionError

            raise PrecisionError(f"tensor {t} reached NaN/Inf on the calibration data; check the inputs and the model")
    tensors = list(dict.fromkeys(u.activation for u in plan.units))
    batches = split.stats_batches(_batch(parent, tensors))
    thresholds.update(consumer_mse_thresholds(parent.model, plan, {t: stats[t].amax for t in observed}, batches, cfg))
    return thresholds


def method_fields(cfg, rounding: RoundingResult | None, weights: str, why: str) -> dict:
    """Manifest fields recording the weight rounding (``weights``, chosen for ``why``) and the
    activation method used."""
    fields: dict = {"weight_rounding": weights}
    if cfg.weights == "auto":
        fields["weight_rounding_auto"] = {"chosen": weights, "why": why}
    if isinstance(rounding, ReconstructResult):
        fields["weights"] = "int8 symmetric, per output channel (max), block reconstruction (BRECQ/QDrop, AdaRound relaxation)"
        fields["reconstruction"] = reconstruction_record(rounding)
        if rounding.fallback is None:
            rounding = None
    if rounding is not None:
        layers = rounding.layers.values()
        fields["weights"] = "int8 symmetric, per output channel (max), adaptive rounding (AdaRound objective, greedy)"
        fields["adaround"] = {
            "images": rounding.images, "columns_per_layer": ADAROUND.columns,
            "quantized_inputs": ADAROUND.quantized_inputs,
            "layers": len(rounding.layers), "skipped": rounding.skipped,
            "flipped_weights": int(sum(int(v["flipped"]) for v in layers)),
            "mean_output_error_nearest": float(np.mean([v["nearest_error"] for v in layers])) if rounding.layers else None,
            "mean_output_error_adaround": float(np.mean([v["adaround_error"] for v in layers])) if rounding.layers else None,
        }
    if cfg.method == "consumer-mse":
        fields["consumer_mse"] = {"images": CONSUMER_MSE.images, "columns_per_consumer": CONSUMER_MSE.columns,
                                  "grid": CONSUMER_MSE.grid, "refine": CONSUMER_MSE.refine, "low": CONSUMER_MSE.low}
    return fields


def reconstruction_record(rounding) -> dict:
    """The manifest's record of a block reconstruction: settings, and per block the loss it started
    from and ended at, what was kept, and seconds."""
    c = RECONSTRUCT
    return {
        "images": rounding.images, "iters": c.iters, "batch": c.batch, "drop": c.drop, "output_quant": c.output_quant,
        "learn_scales": c.learn_scales, "fallback": rounding.fallback,
        "blocks": [{k: b[k] for k in ("output", "nodes", "loss_start", "loss", "kept", "seconds") if k in b} for b in rounding.blocks],
        "reconstructed_blocks": sum(b.get("kept") == "reconstructed" for b in rounding.blocks),
    }
