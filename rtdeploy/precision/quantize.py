"""The ``quantize`` stage: FP32 ONNX -> ``X.int8.onnx`` (calibrated Q/DQ) or ``X.fp16.onnx``.

INT8 flow: read the FP32 parent and its manifest -> plan the Q/DQ placement -> collect activation
statistics on the calibration images (or reuse the cache) -> thresholds by the chosen calibrator
-> optional sensitivity ranking and fallback on a held-out part -> write the Q/DQ model with its
manifest (and optionally a TensorRT calibration cache). FP16 flow: collect every activation's
maximum -> keep overflowing nodes in FP32 -> write the FP16 model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import PrecisionError
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
    target: str = "tensorrt"
    high_precision: str = "fp32"


def check_config(cfg: QuantizeConfig) -> None:
    """Reject inconsistent options before any work.

    Raises:
        PrecisionError: one of the option rules is broken (the message names it).
    """
    from rtdeploy.precision.int8.calibrators import check_method

    if cfg.int8 == cfg.fp16:
        raise PrecisionError("give exactly one of --int8 or --fp16")
    check_method(cfg.method, cfg.percentile)
    if isinstance(cfg.keep_fp, bool) or not isinstance(cfg.keep_fp, int) or cfg.keep_fp < 0:
        raise PrecisionError(f"--keep-fp {cfg.keep_fp!r} must be a whole number >= 0")
    if cfg.target_agreement is not None and not 0 < cfg.target_agreement <= 1:
        raise PrecisionError(f"--target-agreement {cfg.target_agreement!r} must be a fraction in (0, 1], e.g. 0.99")
    if cfg.keep_fp and cfg.target_agreement is not None:
        raise PrecisionError("give --keep-fp N or --target-agreement A, not both")
    if cfg.fp16:
        int8_only = {"--keep-fp": cfg.keep_fp, "--target-agreement": cfg.target_agreement,
                     "--trt-cache": cfg.trt_cache, "--from-trt-cache": cfg.from_trt_cache}
        given = [k for k, v in int8_only.items() if v]
        if given:
            raise PrecisionError(f"{', '.join(given)} apply to --int8 only")
    if cfg.int8 and cfg.fp16_io:
        raise PrecisionError("--fp16-io applies to --fp16 only")
    if cfg.trt_cache and cfg.from_trt_cache:
        raise PrecisionError("give --trt-cache (write) or --from-trt-cache (read), not both")
    _check_target(cfg)


def _check_target(cfg: QuantizeConfig) -> None:
    """``target`` and ``high_precision``: known values, INT8 only, and the options each target allows."""
    if cfg.target not in TARGETS:
        raise PrecisionError(f"--target {cfg.target!r} is not known; accepted: {', '.join(TARGETS)}")
    if cfg.high_precision not in HIGH_PRECISIONS:
        raise PrecisionError(f"--high-precision {cfg.high_precision!r} is not known; accepted: {', '.join(HIGH_PRECISIONS)}")
    if cfg.fp16 and (cfg.target != TARGETS[0] or cfg.high_precision != HIGH_PRECISIONS[0]):
        raise PrecisionError("--target and --high-precision apply to --int8 only")
    if cfg.high_precision == "fp16" and cfg.from_trt_cache:
        raise PrecisionError("--high-precision fp16 measures activation ranges on calibration images for its overflow guard, "
                             "so it cannot start from --from-trt-cache; give --calib-dir instead")
    if cfg.target == "onnxruntime-cpu":
        trt_only = {"--keep-fp": cfg.keep_fp, "--target-agreement": cfg.target_agreement, "--trt-cache": cfg.trt_cache,
                    "--from-trt-cache": cfg.from_trt_cache, "--high-precision fp16": cfg.high_precision == "fp16"}
        given = [k for k, v in trt_only.items() if v]
        if given:
            raise PrecisionError(f"{', '.join(given)} apply to --target tensorrt only; drop them or use --target tensorrt")


def default_output(model: Path, precision: str) -> Path:
    """``X.onnx`` -> ``X.int8.onnx`` / ``X.fp16.onnx`` beside it."""
    stem = model.name[:-5] if model.name.endswith(".onnx") else model.name
    return model.with_name(f"{stem}.{precision}.onnx")


def quantize(cfg: QuantizeConfig) -> QuantizeResult:
    """Run the stage (see the module docstring).

    Raises:
        PrecisionError: bad options, an already quantized model, a foreign calibration cache.
        ArtifactError: the FP32 model or its manifest is missing or unreadable.
        DataError: calibration images missing, empty, corrupt, too few, or non-finite.
        OutputError: the output cannot be written.
    """
    from rtdeploy.artifacts import check_output_path
    from rtdeploy.precision.graph import load_fp32_parent, name_nodes

    check_config(cfg)
    precision = "int8" if cfg.int8 else "fp16"
    out = check_output_path(cfg.output or default_output(Path(cfg.model), precision))
    if cfg.trt_cache:
        check_output_path(cfg.trt_cache)
    parent = load_fp32_parent(cfg.model)
    name_nodes(parent.model)
    if cfg.int8 and cfg.target == "onnxruntime-cpu":
        from rtdeploy.precision.int8_cpu_stage import run_int8_cpu

        return run_int8_cpu(cfg, parent, out)
    if cfg.int8:
        from rtdeploy.precision.int8_stage import run_int8

        return run_int8(cfg, parent, out)
    from rtdeploy.precision.fp16_stage import run_fp16

    return run_fp16(cfg, parent, out)
