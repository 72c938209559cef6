"""The INT8 methods that need the model and images, not only activation statistics.

``--weights adaround`` (adaptive weight rounding, :mod:`rtdeploy.precision.int8.adaround`) and
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

log = logging.getLogger(__name__)

ADAROUND = AdaRoundConfig()
CONSUMER_MSE = ConsumerMseConfig()


def _batch(parent, tensors: list[str]) -> int:
    from rtdeploy.precision.int8.collect import batch_size_for

    return max(1, min(64, batch_size_for(parent.model, tensors)))


def adaptive_rounding(parent, plan, scales: dict[str, float], split, cfg: AdaRoundConfig = ADAROUND, *,
                      progress: bool = False) -> RoundingResult:
    """AdaRound's objective for every supported weighted layer, on the first ``cfg.images``
    images of the statistics part of ``split`` (``progress``: a bar over them)."""
    from rtdeploy.precision.int8.adaround import adaround_weights

    tensors = [u.activation for u in plan.units if u.weight is not None]
    batches = split.stats_batches(_batch(parent, tensors), progress=progress)
    return adaround_weights(parent.model, plan, scales, batches, cfg)


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


def method_fields(cfg, rounding: RoundingResult | None) -> dict:
    """Manifest fields recording the weight rounding and the activation method used."""
    fields: dict = {"weight_rounding": cfg.weights}
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
