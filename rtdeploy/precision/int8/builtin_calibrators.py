"""The calibrators rtdeploy ships, registered in the calibrator registry like any user's
(:mod:`rtdeploy.precision.calibrators`).

From the histogram of |x| (:mod:`rtdeploy.precision.int8.calibrators`): ``entropy`` (TensorRT's
KL-divergence search), ``max``, ``percentile`` and ``mse``. From the model and images:
``consumer-mse`` (:mod:`rtdeploy.precision.int8.consumer_mse`), the threshold that minimises the
error of the ops that read each tensor, on the Q/DQ placement for TensorRT.
"""

from __future__ import annotations

from collections.abc import Callable

from rtdeploy.errors import PrecisionError

# Nothing heavy at import: the command line reads the registry's names to build --method's choices.

STATISTICS = {
    "entropy": "TensorRT's KL-divergence search",
    "max": "the largest |x|",
    "percentile": "the --percentile of |x|",
    "mse": "least quantization error",
}


def register_builtins(register: Callable) -> None:
    """Register the built-in calibrators with ``register`` (the registry's ``register_calibrator``)."""
    for name, description in STATISTICS.items():
        needs = () if name == "max" else ("histogram",)
        register(name, needs=needs, description=description)(_from_statistics(name))
    register("consumer-mse", needs=("histogram", "model", "images"), targets=("tensorrt",),
             description="least error of the ops that read each tensor",
             settings=consumer_mse_settings)(consumer_mse)


def _from_statistics(method: str):
    def thresholds(stats: dict, inputs) -> dict[str, float]:
        from rtdeploy.precision.int8.calibrators import compute_thresholds

        return compute_thresholds(stats, method, inputs.percentile)

    thresholds.__name__ = thresholds.__qualname__ = method.replace("-", "_")
    return thresholds


def consumer_mse(stats: dict, inputs) -> dict[str, float]:
    """Thresholds for every tensor in ``stats``: consumer-mse for the plan's observed tensors, the
    ``mse`` calibrator for any other (only a TensorRT cache asks for those)."""
    import numpy as np

    from rtdeploy.precision.int8.calibrators import compute_thresholds
    from rtdeploy.precision.int8.collect import batch_size_for
    from rtdeploy.precision.int8.consumer_mse import ConsumerMseConfig, consumer_mse_thresholds

    plan = inputs.plan
    observed = plan.observed()
    others = {t: s for t, s in stats.items() if t not in set(observed)}
    thresholds = compute_thresholds(others, "mse") if others else {}
    for t in observed:
        if not np.isfinite(stats[t].amax):
            raise PrecisionError(f"tensor {t} reached NaN/Inf on the calibration data; check the inputs and the model")
    tensors = list(dict.fromkeys(u.activation for u in plan.units))
    batches = inputs.batches(max(1, min(64, batch_size_for(inputs.model, tensors, sample_shape=inputs.sample_shape))))
    thresholds.update(consumer_mse_thresholds(inputs.model, plan, {t: stats[t].amax for t in observed}, batches, ConsumerMseConfig()))
    return thresholds


def consumer_mse_settings() -> dict:
    """The consumer-mse search's settings, for the manifest."""
    from rtdeploy.precision.int8.consumer_mse import ConsumerMseConfig

    c = ConsumerMseConfig()
    return {"images": c.images, "columns_per_consumer": c.columns, "grid": c.grid, "refine": c.refine, "low": c.low}
