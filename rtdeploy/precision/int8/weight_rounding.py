"""``--weights adaround``: adaptive weight rounding run on the calibration split, and what it adds
to the manifest (the algorithm is :mod:`rtdeploy.precision.int8.adaround`)."""

from __future__ import annotations

import numpy as np

from rtdeploy.precision.int8.adaround import AdaRoundConfig, RoundingResult

ADAROUND = AdaRoundConfig()


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


def rounding_fields(rounding: RoundingResult | None, weights: str) -> dict:
    """Manifest fields recording the weight rounding."""
    fields: dict = {"weight_rounding": weights}
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
