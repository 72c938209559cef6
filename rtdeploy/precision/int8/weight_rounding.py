"""``--weights``: the weight rounding run on the calibration split, ``auto``'s choice among them, and
what each adds to the manifest. The algorithms: :mod:`rtdeploy.precision.int8.adaround` (``adaround``)
and :mod:`rtdeploy.precision.int8.reconstruct` (``block``)."""

from __future__ import annotations

import logging

import numpy as np

from rtdeploy.precision.int8.adaround import AdaRoundConfig, RoundingResult
from rtdeploy.precision.int8.reconstruct import ReconstructConfig, ReconstructResult

log = logging.getLogger(__name__)

ADAROUND = AdaRoundConfig()
RECONSTRUCT = ReconstructConfig()

# ``--weights auto`` (the default): the best rounding measured on held-out calibration images
# (benchmarks/int8_reconstruct.py) whose extra work fits the budget. The budget is what block
# reconstruction costs on ResNet-56 (0.125 GMAC per 32x32 image: 128 images through each block three
# times, 100 steps of 8 images forward and backward), where the whole calibration of 1,000 images was
# measured to fit a minute on this project's 2-core machine; a model costing more per image gets the
# next method that fits; with a float fallback (--keep-fp, --target-agreement) block is not chosen
# (see auto_weights). Fewer calibration images than AUTO_MIN_IMAGES keep round-to-nearest: the
# adaptive methods fit their rounding to the images they see.
AUTO_BUDGET_GMACS = 360.0
AUTO_MIN_IMAGES = 128


def adaptive_rounding(parent, plan, scales: dict[str, float], split, cfg: AdaRoundConfig = ADAROUND, *,
                      progress: bool = False) -> RoundingResult:
    """AdaRound's objective for every supported weighted layer, on the first ``cfg.images``
    images of the statistics part of ``split`` (never the held-out part; ``progress``: a bar over them)."""
    from rtdeploy.precision.int8.adaround import adaround_weights
    from rtdeploy.precision.int8.collect import batch_size_for

    tensors = [u.activation for u in plan.units if u.weight is not None]
    batches = split.stats_batches(max(1, min(64, batch_size_for(parent.model, tensors, sample_shape=parent.sample_shape))),
                                  progress=progress)
    return adaround_weights(parent.model, plan, scales, batches, cfg)


def block_reconstruction(parent, plan, scales: dict[str, float], split, cfg: ReconstructConfig | None = None, *,
                         progress: bool = False) -> ReconstructResult:
    """Block reconstruction of every weighted layer's rounding on the first ``cfg.images`` images of
    the statistics part of ``split`` (``progress``: a bar over the blocks). A graph with an op the
    torch form cannot run falls back to :func:`adaptive_rounding` (logged, and recorded as the
    result's ``fallback``)."""
    from rtdeploy.precision.int8.reconstruct import reconstruct
    from rtdeploy.precision.int8.torch_graph import Unsupported

    try:
        return reconstruct(parent.model, plan, scales, split.stats_batches(64), cfg or RECONSTRUCT, progress=progress)
    except Unsupported as e:
        log.warning("block reconstruction cannot run this graph (%s); using --weights adaround instead", e)
        greedy = adaptive_rounding(parent, plan, scales, split, progress=progress)
        return ReconstructResult(**vars(greedy), fallback=f"adaround: {e}")


def auto_weights(model, plan, images: int, cfg) -> tuple[str, str]:
    """The rounding ``cfg.weights`` stands for (``auto`` resolved), and why (for the manifest)."""
    if cfg.weights != "auto":
        return cfg.weights, "asked for"
    if cfg.from_trt_cache is not None:
        return "nearest", "scales from a TensorRT cache: no calibration images"
    if images < AUTO_MIN_IMAGES:
        return "nearest", f"{images} calibration images (< {AUTO_MIN_IMAGES}: too few to fit a rounding to)"
    gmacs = weighted_gmacs(model, plan)
    r, a = RECONSTRUCT, ADAROUND
    costs = {"block": gmacs * 3 * (min(images, r.images) + r.iters * r.batch), "adaround": gmacs * min(images, a.images)}
    if cfg.keep_fp or cfg.target_agreement is not None:
        # Block reconstruction tunes each block's rounding to make up for the error of its INT8
        # neighbours; layers then returned to float leave that compensation wrong (ResNet-20,
        # --keep-fp 6, dev/: block 98.47 %, adaround 99.07 %, nearest 98.83 %).
        del costs["block"]
    for method, cost in costs.items():
        if cost <= AUTO_BUDGET_GMACS:
            return method, f"{cost:.0f} GMAC of extra work (budget {AUTO_BUDGET_GMACS:.0f})"
    return "nearest", f"adaptive rounding would cost {costs['adaround']:.0f} GMAC (budget {AUTO_BUDGET_GMACS:.0f})"


def weighted_gmacs(model, plan) -> float:
    """Multiply-accumulates per image of the plan's weighted layers, in billions (from shape inference;
    a layer whose output shape is unknown counts as 0)."""
    from onnx import numpy_helper

    from rtdeploy.footprint import footprint
    from rtdeploy.precision.graph import initializers

    inits, nodes = initializers(model.graph), {n.name: n for n in model.graph.node}
    out_bytes = footprint(model).per_sample  # the FP32 parent: 4 bytes per output element
    total = 0
    for u in plan.units:
        if u.weight is None:
            continue
        w = numpy_helper.to_array(inits[u.weight])
        total += out_bytes.get(nodes[u.node].output[0], 0) // 4 * (w.size // max(1, w.shape[u.axis]))
    return total / 1e9


def rounding_fields(rounding: RoundingResult | None, weights: str, why: str = "asked for", *, auto: bool = False) -> dict:
    """Manifest fields recording the weight rounding used (``weights``; with ``auto``, what it chose and ``why``)."""
    fields: dict = {"weight_rounding": weights}
    if auto:
        fields["weight_rounding_auto"] = {"chosen": weights, "why": why}
    if isinstance(rounding, ReconstructResult):
        fields["weights"] = "int8 symmetric, per output channel (max), block reconstruction (BRECQ/QDrop, AdaRound relaxation)"
        fields["reconstruction"] = _reconstruction_record(rounding)
        if rounding.fallback is None:
            return fields
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
    return fields


def _reconstruction_record(rounding: ReconstructResult) -> dict:
    """Settings, and per block the loss it started from and ended at, what was kept, and seconds."""
    c = RECONSTRUCT
    return {
        "images": rounding.images, "iters": c.iters, "batch": c.batch, "drop": c.drop, "output_quant": c.output_quant,
        "learn_scales": c.learn_scales, "fallback": rounding.fallback,
        "blocks": [{k: b[k] for k in ("output", "nodes", "loss_start", "loss", "kept", "seconds") if k in b} for b in rounding.blocks],
        "reconstructed_blocks": sum(b.get("kept") == "reconstructed" for b in rounding.blocks),
    }
