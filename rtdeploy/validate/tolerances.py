"""Default tolerances per precision, and user overrides.

A candidate passes when every statistic of every output is within its tolerance. Quantities in
[0, 1] (cosine, agreements) have a lower bound; errors have an upper bound. ``None`` means "report,
but do not check". Any NaN or Inf in the candidate (or the reference) always fails.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rtdeploy.errors import RtDeployError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Tolerance:
    """Limits for one candidate precision.

    Attributes:
        cosine: minimum mean per-sample cosine similarity of candidate vs reference outputs.
        cosine_worst: minimum cosine similarity of the worst sample.
        max_abs: maximum absolute error, as a fraction of the reference output's range (max - min).
        max_rel: maximum relative error |c - r| / |r| (|r| floored at 0.1 % of max |r|); None by default.
        top1: minimum top-1 agreement (candidate's top class == reference's top class).
        top5: minimum top-5 agreement (reference's top class is among the candidate's top 5).
        accuracy_drop: maximum drop in top-1 accuracy, in percentage points, when labels are given.
    """

    cosine: float | None = None
    cosine_worst: float | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    top1: float | None = None
    top5: float | None = None
    accuracy_drop: float | None = None

    def to_dict(self) -> dict:
        """The limits by name."""
        return dataclasses.asdict(self)


# fp32: onnxruntime and PyTorch differ only by float rounding order (errors ~1e-6 of the range).
# fp16: 10-bit mantissa, errors grow with depth; about 1e-3 of the range for these ResNets.
# int8 (TensorRT placement), int8-cpu (onnxruntime's CPU form: 7-bit weights, uint8 activations):
#   on real inputs, each separating limit lies at the geometric mean of the distances from perfect
#   of the worst correct model and the best broken one (activation ranges x 8), measured on trained
#   CIFAR-10 ResNets (benchmarks/results/validation_tolerances.md, docs/validation.md; a test keeps
#   these equal to the recorded derivation). top-5 is not derived (correct models measured 1.0).
# <key>@random: an INT8 model judged on random inputs alone (no real ones): only gross errors
#   (every scale x 8) separate from correct models there; top-1 does not (a correct model: 0.375).
DEFAULT_TOLERANCES = {
    "fp32": Tolerance(cosine=0.99999, cosine_worst=0.9999, max_abs=1e-4, top1=0.99, top5=1.0, accuracy_drop=0.1),
    "fp16": Tolerance(cosine=0.9995, cosine_worst=0.995, max_abs=1e-2, top1=0.97, top5=0.99, accuracy_drop=0.5),
    "int8": Tolerance(cosine=0.986, cosine_worst=0.69, max_abs=None, top1=0.935, top5=0.95, accuracy_drop=1.3),
    "int8-cpu": Tolerance(cosine=0.984, cosine_worst=0.8, max_abs=None, top1=0.943, top5=0.95, accuracy_drop=1.4),
    "int8@random": Tolerance(cosine=0.8, cosine_worst=0.69),
    "int8-cpu@random": Tolerance(cosine=0.78, cosine_worst=0.68),
}
# INT8 target (the quantize manifest's quantization.target) -> its DEFAULT_TOLERANCES key.
TARGET_KEYS = {"tensorrt": "int8", "onnxruntime-cpu": "int8-cpu"}

# statistic -> (tolerance field, "min" or "max"): how each checked statistic meets its limit.
CHECKS = {
    "cosine_mean": ("cosine", "min"),
    "cosine_worst": ("cosine_worst", "min"),
    "max_abs_err_of_range": ("max_abs", "max"),
    "max_rel_err": ("max_rel", "max"),
    "top1_agreement": ("top1", "min"),
    "top5_agreement": ("top5", "min"),
    "accuracy_drop_points": ("accuracy_drop", "max"),
}


def tolerance_for(precision: str, overrides: dict[str, float | None] | None = None, *, target: str | None = None,
                  random_only: bool = False) -> Tolerance:
    """The default tolerance of ``precision`` (for INT8: of its ``target``, and of random inputs
    when ``random_only``: the verdict then rests on no real input) with ``overrides`` (field name
    -> value) applied.

    Raises:
        RtDeployError: unknown precision or override name.
    """
    if precision not in PRECISIONS:
        raise RtDeployError(f"unknown precision {precision!r}; accepted: {', '.join(PRECISIONS)}")
    key = precision
    if precision == "int8":
        key = TARGET_KEYS.get(target, "int8") + ("@random" if random_only else "")
    fields = {f.name for f in dataclasses.fields(Tolerance)}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise RtDeployError(f"unknown tolerance {unknown[0]!r}; accepted: {', '.join(sorted(fields))}")
    return dataclasses.replace(DEFAULT_TOLERANCES[key], **{k: check_limit(k, v) for k, v in given.items()})


# Limits that are fractions in [0, 1] (a lower bound); the others are errors or points (>= 0).
FRACTIONS = ("cosine", "cosine_worst", "top1", "top5")


def check_limit(name: str, value) -> float:
    """One tolerance limit, checked: finite (a NaN limit would pass everything), a fraction in
    [0, 1] for cosines and agreements (95 is taken for a percent and refused with the fraction
    meant), >= 0 for errors; an accuracy drop in points at most 100.

    Raises:
        RtDeployError: naming the option (``--tol-top1``) and the accepted range.
    """
    from rtdeploy.checks import fraction, non_negative

    option = "--tol-" + name.replace("_", "-")
    if name in FRACTIONS:
        return fraction(value, option)
    number = non_negative(value, option)
    if name == "accuracy_drop" and number > 100:
        raise RtDeployError(f"{option} {value!r} is not accepted; give percentage points in 0..100, such as 0.5")
    return number
