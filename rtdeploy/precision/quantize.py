"""The ``quantize`` stage: FP32 ONNX -> ``X.int8.onnx`` (calibrated Q/DQ) or ``X.fp16.onnx``.

INT8 flow: read the FP32 parent and its manifest -> plan the Q/DQ placement -> collect activation
statistics on the calibration images (or reuse the cache) -> thresholds by the chosen calibrator
-> optional sensitivity ranking and fallback on a held-out part -> write the Q/DQ model with its
manifest (and optionally a TensorRT calibration cache). FP16 flow: collect every activation's
maximum -> keep overflowing nodes in FP32 -> write the FP16 model.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import PrecisionError, opt
# Re-exported: callers name the result and the shared helpers through this module.
from rtdeploy.precision.stage_common import QuantizeResult, Timer, base_fields, op_inventory, write_model  # noqa: F401
from rtdeploy.precision.stats import resolve_cache_dir  # noqa: F401

log = logging.getLogger(__name__)

TARGETS = ("tensorrt", "onnxruntime-cpu")  # the first is the default
HIGH_PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class QuantizeConfig:
    """What to make, and how (see :func:`rtdeploy.api.quantize` for each option)."""

    model: Path
    int8: bool = False
    fp16: bool = False
    calib_dir: Path | None = None
    method: str = "entropy"
    percentile: float = 99.99
    calib_size: int | None = None
    seed: int = 0
    keep_fp: int = 0
    target_agreement: float | None = None
    fp16_io: bool = False
    trt_cache: Path | None = None
    from_trt_cache: Path | None = None
    trt_version: str = "8601"
    output: Path | None = None
    cache_dir: Path | bool | None = True
    progress: bool = False
    weights: str = "nearest"
    target: str = "tensorrt"
    high_precision: str = "fp32"
    # Set by `rtdeploy run` without --images: the calibration images held out for validation
    # (rtdeploy.data.split) are never read here.
    hold_out_validation: bool = False


def check_config(cfg: QuantizeConfig) -> None:
    """Reject inconsistent options before any work.

    Raises:
        PrecisionError: one of the option rules is broken (the message names it).
    """
    from rtdeploy.checks import fraction, output_file, seed, whole
    from rtdeploy.precision.int8.calibrators import check_method

    if cfg.int8 == cfg.fp16:
        raise PrecisionError(f"give exactly one of {opt('int8')} or {opt('fp16')}")
    check_method(cfg.method, cfg.percentile)
    if isinstance(cfg.keep_fp, bool) or not isinstance(cfg.keep_fp, int) or cfg.keep_fp < 0:
        raise PrecisionError(f"{opt('keep_fp')} {cfg.keep_fp!r} must be a whole number >= 0")
    if cfg.target_agreement is not None:
        fraction(cfg.target_agreement, opt("target_agreement"), PrecisionError, allow_zero=False)
    seed(cfg.seed, opt("seed"), PrecisionError)
    if cfg.calib_size is not None:
        whole(cfg.calib_size, opt("calib_size"), PrecisionError, minimum=1)
    if not re.fullmatch(r"[0-9]+", str(cfg.trt_version)):
        raise PrecisionError(f"{opt('trt_version')} {cfg.trt_version!r} is not accepted; give TensorRT's version as digits, e.g. 8601 for 8.6.1")
    if cfg.keep_fp and cfg.target_agreement is not None:
        raise PrecisionError(f"give {opt('keep_fp')} N or {opt('target_agreement')} A, not both")
    if cfg.fp16:
        int8_only = {opt("keep_fp"): cfg.keep_fp, opt("target_agreement"): cfg.target_agreement,
                     opt("trt_cache"): cfg.trt_cache, opt("from_trt_cache"): cfg.from_trt_cache}
        given = [k for k, v in int8_only.items() if v]
        if given:
            raise PrecisionError(f"{', '.join(given)} apply to {opt('int8')} only")
    _check_method_options(cfg)
    if cfg.int8 and cfg.fp16_io:
        raise PrecisionError(f"{opt('fp16_io')} applies to {opt('fp16')} only")
    if cfg.trt_cache and cfg.from_trt_cache:
        raise PrecisionError(f"give {opt('trt_cache')} (write) or {opt('from_trt_cache')} (read), not both")
    _check_weights(cfg)
    _check_target(cfg)
    output_file(cfg.output or default_output(Path(cfg.model), "int8" if cfg.int8 else "fp16"), manifest=True)


def _check_method_options(cfg: QuantizeConfig) -> None:
    """A calibrator option that would be ignored is refused: ``--method`` with ``--fp16`` (which
    calibrates nothing), ``--percentile`` with another method."""
    defaults = QuantizeConfig.__dataclass_fields__
    if cfg.fp16 and cfg.method != defaults["method"].default:
        raise PrecisionError(f"{opt('method')} {cfg.method} applies to {opt('int8')} only; drop it for {opt('fp16')}")
    if cfg.percentile != defaults["percentile"].default and cfg.method != "percentile":
        raise PrecisionError(f"{opt('percentile')} {cfg.percentile:g} applies to {opt('method')} percentile only "
                             f"(the method is {cfg.method}); add {opt('method')} percentile or drop {opt('percentile')}")


WEIGHT_ROUNDINGS = ("nearest", "adaround")


def _check_weights(cfg: QuantizeConfig) -> None:
    if cfg.weights not in WEIGHT_ROUNDINGS:
        raise PrecisionError(f"unknown weight rounding {opt('weights')} {cfg.weights!r}; accepted: {', '.join(WEIGHT_ROUNDINGS)}")
    if cfg.fp16 and cfg.weights != "nearest":
        raise PrecisionError(f"{opt('weights')} {cfg.weights} applies to {opt('int8')} only")
    if cfg.target == "onnxruntime-cpu" and cfg.weights != "nearest":
        raise PrecisionError(f"{opt('weights')} {cfg.weights} applies to {opt('target')} tensorrt only; drop it or use {opt('target')} tensorrt")


def _check_target(cfg: QuantizeConfig) -> None:
    """``target`` and ``high_precision``: known values, INT8 only, and the options each target allows."""
    if cfg.target not in TARGETS:
        raise PrecisionError(f"{opt('target')} {cfg.target!r} is not known; accepted: {', '.join(TARGETS)}")
    if cfg.high_precision not in HIGH_PRECISIONS:
        raise PrecisionError(f"{opt('high_precision')} {cfg.high_precision!r} is not known; accepted: {', '.join(HIGH_PRECISIONS)}")
    if cfg.fp16 and (cfg.target != TARGETS[0] or cfg.high_precision != HIGH_PRECISIONS[0]):
        raise PrecisionError(f"{opt('target')} and {opt('high_precision')} apply to {opt('int8')} only")
    if cfg.high_precision == "fp16" and cfg.from_trt_cache:
        raise PrecisionError(f"{opt('high_precision')} fp16 measures activation ranges on calibration images for its overflow guard, "
                             f"so it cannot start from {opt('from_trt_cache')}; give {opt('calib_dir')} instead")
    if cfg.target == "onnxruntime-cpu":
        trt_only = {opt("keep_fp"): cfg.keep_fp, opt("target_agreement"): cfg.target_agreement, opt("trt_cache"): cfg.trt_cache,
                    opt("from_trt_cache"): cfg.from_trt_cache, f"{opt('high_precision')} fp16": cfg.high_precision == "fp16"}
        given = [k for k, v in trt_only.items() if v]
        if given:
            raise PrecisionError(f"{', '.join(given)} apply to {opt('target')} tensorrt only; drop them or use {opt('target')} tensorrt")


def default_output(model: Path, precision: str) -> Path:
    """``X.onnx`` -> ``X.int8.onnx`` / ``X.fp16.onnx`` beside it."""
    from rtdeploy.artifacts import derived_path

    return derived_path(model, precision)


def quantize(cfg: QuantizeConfig) -> QuantizeResult:
    """Run the stage (see the module docstring).

    Raises:
        PrecisionError: bad options, an already quantized model, a foreign calibration cache.
        ArtifactError: the FP32 model or its manifest is missing or unreadable.
        DataError: calibration images missing, empty, corrupt, too few, or non-finite.
        OutputError: the output cannot be written.
    """
    from rtdeploy.artifacts import check_output_path, refuse_overwriting_inputs
    from rtdeploy.precision.graph import load_fp32_parent, name_nodes

    check_config(cfg)
    precision = "int8" if cfg.int8 else "fp16"
    out = check_output_path(cfg.output or default_output(Path(cfg.model), precision))
    if cfg.trt_cache:
        check_output_path(cfg.trt_cache)
    parent = load_fp32_parent(cfg.model)  # refuses an already quantized model first, with the clearer message
    refuse_overwriting_inputs(out, cfg.model, cfg.calib_dir, cfg.from_trt_cache)
    if cfg.trt_cache:
        refuse_overwriting_inputs(cfg.trt_cache, cfg.model, cfg.from_trt_cache, option="--trt-cache")
    name_nodes(parent.model)
    if cfg.int8 and cfg.target == "onnxruntime-cpu":
        from rtdeploy.precision.int8_cpu_stage import run_int8_cpu

        return run_int8_cpu(cfg, parent, out)
    if cfg.int8:
        from rtdeploy.precision.int8_stage import run_int8

        return run_int8(cfg, parent, out)
    from rtdeploy.precision.fp16_stage import run_fp16

    return run_fp16(cfg, parent, out)
