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
from rtdeploy.library_errors import stage_boundary
from rtdeploy.options import FLAG, READS, WRITES, JsonReport, Options, Progress, When, option
from rtdeploy.precision.options import CALIBRATES, INT8, TENSORRT, Calibration
from rtdeploy.precision.artifact import QuantizeResult

log = logging.getLogger(__name__)

TARGETS = ("tensorrt", "onnxruntime-cpu")  # the first is the default
HIGH_PRECISIONS = ("fp32", "fp16")
WEIGHT_ROUNDINGS = ("auto", "nearest", "adaround", "block")  # the first is the default


def _weights(value):
    if value not in WEIGHT_ROUNDINGS:
        raise PrecisionError(f"unknown weight rounding {opt('weights')} {value!r}; accepted: {', '.join(WEIGHT_ROUNDINGS)}")
    return value


def _choice(name: str, accepted: tuple[str, ...]):
    def parse(value):
        if value not in accepted:
            raise PrecisionError(f"{opt(name)} {value!r} is not known; accepted: {', '.join(accepted)}")
        return value

    return parse


def _trt_version(value):
    if not re.fullmatch(r"[0-9]+", str(value)):
        raise PrecisionError(f"{opt('trt_version')} {value!r} is not accepted; give TensorRT's version as digits, e.g. 8601 for 8.6.1")
    return str(value)


FP16 = When("fp16", True, message="{option} applies to {mode} only")


@dataclass(frozen=True, kw_only=True)
class QuantizeConfig(JsonReport, Progress, Calibration, Options):
    """What to make, and how: ``rtdeploy quantize``'s options (each declared once, below and in
    :class:`~rtdeploy.precision.options.Calibration`)."""

    error = PrecisionError

    model: Path = option(argument=True, type=Path, path=READS, changes_output=False,
                         help="An FP32 ONNX made by `rtdeploy export` or adopted by `rtdeploy import`.")
    int8: bool = option(False, "--int8", kind=FLAG, help="Calibrated INT8 with Q/DQ nodes placed for TensorRT.")
    fp16: bool = option(False, "--fp16", kind=FLAG, help="FP16 graph (overflowing ops kept in FP32).")
    fp16_io: bool = option(False, "--fp16-io", kind=FLAG, applies=(FP16,), help="FP16 inputs and outputs (default: FP32 I/O with casts).")
    trt_cache: Path | None = option(None, "--trt-cache", type=Path, path=WRITES, changes_output=False, applies=(INT8, TENSORRT),
                                    help="Also write a TensorRT calibration cache (TRT-<ver>-EntropyCalibration2) here.")
    from_trt_cache: Path | None = option(None, "--from-trt-cache", type=Path, path=READS, changes_output=False, applies=(INT8, TENSORRT),
                                         help="Take activation scales from this TensorRT calibration cache (no calibration).")
    trt_version: str = option("8601", "--trt-version", parse=_trt_version,
                              applies=(When("trt_cache", lambda v: v is not None,
                                            message="{given} does nothing {decider}: it is the header of the cache --trt-cache writes; "
                                                    "drop {option} or add --trt-cache FILE"),),
                              help="TensorRT version written in the cache header (8601 = 8.6.1).")
    target: str = option("tensorrt", "--target", choices=TARGETS, parse=_choice("target", TARGETS), applies=(INT8,),
                         help="INT8 form: Q/DQ placed for TensorRT, or uint8 Q/DQ that onnxruntime's CPU kernels fuse.")
    high_precision: str = option("fp32", "--high-precision", choices=HIGH_PRECISIONS, parse=_choice("high_precision", HIGH_PRECISIONS),
                                 applies=(When("int8", True, message="{option} apply to {mode} only"),
                                          When("target", "tensorrt", message="{given} apply to {mode} only; drop them or use "
                                               + opt("target") + " tensorrt")),
                                 help="Type of the float parts of an INT8 --target tensorrt graph (fp16: INT8+FP16 in a strongly typed build).")
    weights: str = option("auto", "--weights", choices=WEIGHT_ROUNDINGS, parse=_weights,
                          applies=(When("int8", True, message="{given} applies to {mode} only"),
                                   When("target", "tensorrt", message="{given} applies to {mode} only; drop it or use "
                                        + opt("target") + " tensorrt")),
                          help="INT8 weight rounding: nearest; adaround (each weight up or down to minimise its layer's output error); "
                               "block (each residual block's rounding against its re-quantized output); auto: block where it fits the "
                               "time budget (small models, >= 128 calibration images), else adaround, else nearest.")
    output: Path | None = option(None, "-o", "--output", type=Path, path=WRITES, changes_output=False,
                                 help="Model to write [default: X.int8.onnx, X.int8-cpu.onnx for --target onnxruntime-cpu, or "
                                      "X.fp16.onnx, beside X.onnx]; an artifact of another kind there is not replaced.")
    # Set by `rtdeploy run` without --images: the part of the calibration images that the run
    # validates on (rtdeploy.data.split) is never read here. The calibration fingerprint in the
    # reuse record covers it (it is that of the images actually read).
    hold_out_validation: bool = option(False, cli=False, changes_output=False, applies=(CALIBRATES,),
                                       help="Leave out the calibration images held out for validation (rtdeploy.data.split).")

    @property
    def precision(self) -> str:
        """``int8`` or ``fp16``."""
        return "int8" if self.int8 else "fp16"

    @property
    def calibrates(self) -> bool:
        """True when the stage reads calibration images (see :func:`uses_calibration_images`)."""
        from rtdeploy.precision.reuse_record import uses_calibration_images

        return uses_calibration_images(self)

    quantizes = calibrates

    def explain(self, name: str) -> str:
        return f"with {opt('from_trt_cache')} {self.from_trt_cache}" if self.from_trt_cache else f"with {opt('fp16')}"

    def rules(self) -> None:
        """The rules between options that the mode rule does not cover.

        Raises:
            PrecisionError: one of them is broken (the message names it).
        """
        if self.int8 == self.fp16:
            raise PrecisionError(f"give exactly one of {opt('int8')} or {opt('fp16')}")
        self.calibration_rules()
        if self.trt_cache and self.from_trt_cache:
            raise PrecisionError(f"give {opt('trt_cache')} (write) or {opt('from_trt_cache')} (read), not both")
        if self.high_precision == "fp16" and self.from_trt_cache:
            raise PrecisionError(f"{opt('high_precision')} fp16 measures activation ranges on calibration images for its overflow guard, "
                                 f"so it cannot start from {opt('from_trt_cache')}; give {opt('calib_dir')} instead")
        if self.int8 and self.target not in _calibrator_targets(self.method):
            raise PrecisionError(f"{opt('method')} {self.method} calibrates {' and '.join(_calibrator_targets(self.method))} only, "
                                 f"not {opt('target')} {self.target}; choose another {opt('method')} or {opt('target')}")

    def check_inputs(self) -> None:
        _refuse_quantized_source(Path(self.model))

    def writes(self) -> list[tuple[str, Path]]:
        from rtdeploy.files import manifest_path

        out = output_of(self)
        return [("output", out), ("output", manifest_path(out))]


def _refuse_quantized_source(model: Path) -> None:
    """An FP16/INT8 model given as the FP32 source is refused here, before its default output name
    (``X.int8.int8`` is ``X.int8``) is judged by the output guard; anything unreadable is left to the stage."""
    from rtdeploy.errors import ArtifactError
    from rtdeploy.manifests import read_artifact
    from rtdeploy.precision.graph import refuse_quantized

    try:
        record = read_artifact(model, required=False) if model.is_file() else None
    except ArtifactError:
        return
    if record is not None:
        refuse_quantized(record, model)


def _calibrator_targets(method: str) -> tuple[str, ...]:
    from rtdeploy.precision.calibrators import get_calibrator

    return get_calibrator(method).targets


def check_config(cfg: QuantizeConfig) -> None:
    """Every option rule, the mode rule and the output guard, before any work.

    Raises:
        PrecisionError, OutputError: one of the rules is broken (the message names it).
    """
    from rtdeploy.checks import output_file

    cfg.check()
    out = output_of(cfg)
    # -o onto the model itself is refused by the output guard in clearer words ("would overwrite the input itself")
    output_file(out, manifest=True, writes=None if out.resolve() == Path(cfg.model).resolve() else writes_kind(cfg))


def default_output(model: Path, precision: str, target: str = TARGETS[0]) -> Path:
    """``X.onnx`` -> ``X.int8.onnx`` / ``X.fp16.onnx`` beside it; ``X.int8-cpu.onnx`` for ``target`` onnxruntime-cpu."""
    from rtdeploy.lineage import derived_path, precision_tag

    return derived_path(model, precision_tag(precision, target))


def output_of(cfg: QuantizeConfig) -> Path:
    """The model ``cfg`` writes: ``cfg.output``, else :func:`default_output`."""
    return Path(cfg.output) if cfg.output is not None else default_output(Path(cfg.model), "int8" if cfg.int8 else "fp16", cfg.target)


def writes_kind(cfg: QuantizeConfig):
    """The :class:`rtdeploy.artifacts.ArtifactKind` of the model ``cfg`` writes."""
    from rtdeploy.artifacts import ArtifactKind

    if cfg.fp16:
        return ArtifactKind("onnx-fp16", "fp16")
    return ArtifactKind("onnx-int8", "int8", cfg.target)


@stage_boundary("quantize", PrecisionError)
def quantize(cfg: QuantizeConfig) -> QuantizeResult:
    """Run the stage (see the module docstring).

    Raises:
        PrecisionError: bad options, an already quantized model, a foreign calibration cache.
        ArtifactError: the FP32 model or its manifest is missing or unreadable.
        DataError: calibration images missing, empty, corrupt, too few, or non-finite.
        OutputError: the output cannot be written.
    """
    from rtdeploy.footprint import check_model_memory
    from rtdeploy.precision.graph import load_fp32_parent, name_nodes

    check_config(cfg)
    out = output_of(cfg)
    parent = load_fp32_parent(cfg.model)
    check_model_memory(parent.model, 1, sample_shape=parent.sample_shape, what=f"quantize {parent.path.name}", error=PrecisionError)
    name_nodes(parent.model)
    if cfg.int8 and cfg.target == "onnxruntime-cpu":
        from rtdeploy.precision.int8_cpu_stage import run_int8_cpu

        return run_int8_cpu(cfg, parent, out)
    if cfg.int8:
        from rtdeploy.precision.int8_stage import run_int8

        return run_int8(cfg, parent, out)
    from rtdeploy.precision.fp16_stage import run_fp16

    return run_fp16(cfg, parent, out)
