"""Build options, checked before any work: the batch profile, sizes, and their combinations.

Nothing here imports TensorRT; every check that can be done on the options alone is done here, so
a bad option fails in a second instead of after an export and a calibration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import EngineError, PrecisionError, opt
from rtdeploy.models.options import ModelChoice
from rtdeploy.options import CHOICE_FLAGS, FLAG, NEGATIVE, READS, WRITES, JsonReport, Options, Progress, When, option, output_fields
from rtdeploy.precision.options import Calibration

PRECISIONS = ("fp32", "fp16", "int8")
HARDWARE_COMPATIBILITY = ("ampere+", "same-cc")
DEFAULT_PROFILE = "1:8:32"
MAX_OPTIMIZATION_LEVEL = 5

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes an engine accepts (``min`` <= ``opt`` <= ``max``) and is tuned for (``opt``)."""

    min: int
    opt: int
    max: int

    @classmethod
    def parse(cls, text: str | int) -> "BatchProfile":
        """``"MIN:OPT:MAX"`` or a single ``"N"`` (a static profile N:N:N).

        Raises:
            EngineError: not of that form, not positive, or not ordered.
        """
        parts = str(text).strip().split(":")
        if len(parts) not in (1, 3) or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
            raise EngineError(f"--batch {text!r} is not accepted; give MIN:OPT:MAX (e.g. 1:8:32) or one size N for a static profile")
        values = [int(p) for p in parts] * (3 if len(parts) == 1 else 1)
        profile = cls(*values)
        profile.check()
        return profile

    def check(self) -> None:
        """Raises EngineError unless 1 <= min <= opt <= max."""
        if min(self.min, self.opt, self.max) < 1:
            raise EngineError(f"--batch {self} has a size below 1; every batch size must be a positive integer")
        if not self.min <= self.opt <= self.max:
            raise EngineError(f"--batch {self} is not ordered; TensorRT needs MIN <= OPT <= MAX, e.g. "
                              f"{':'.join(map(str, sorted((self.min, self.opt, self.max))))}")

    @property
    def is_static(self) -> bool:
        """True when min = opt = max."""
        return self.min == self.opt == self.max

    def contains(self, batch: int) -> bool:
        """True when ``batch`` is within [min, max]."""
        return self.min <= batch <= self.max

    def shapes(self, sample_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """The (min, opt, max) input shapes for one sample's shape (C, H, W)."""
        return tuple((b, *sample_shape) for b in (self.min, self.opt, self.max))  # type: ignore[return-value]

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"


def parse_size(value: str | int | None, *, what: str = "--workspace") -> int | None:
    """Bytes from ``"512M"``, ``"2G"``, ``"1.5GiB"``, ``"4096"`` (binary units; None stays None).

    Raises:
        EngineError: not a size, or not positive.
    """
    if value is None:
        return None
    m = _SIZE.match(str(value))
    if not m or (m.group(3) and m.group(3).lower() not in ("b", "ib")):
        raise EngineError(f"{what} {value!r} is not a size; give bytes or a number with K, M, G or T (e.g. 512M, 2G)")
    size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if size <= 0:
        raise EngineError(f"{what} {value!r} must be larger than 0")
    return size


def _one_of(accepted: tuple[str, ...], error: type, refusal: str):
    """The parser of an option whose value is one of ``accepted`` (``refusal`` formats ``{value!r}``)."""
    def parse(value):
        if value not in accepted:
            raise error(refusal.format(value=value))
        return value

    return parse


_precision = _one_of(PRECISIONS, PrecisionError, "precision {value!r} is not accepted; use one of " + ", ".join(PRECISIONS))
_hardware = _one_of(HARDWARE_COMPATIBILITY, EngineError, "--hardware-compatibility {value!r} is not accepted; use ampere+ or same-cc")


def _profile(value) -> str:
    BatchProfile.parse(value)
    return str(value)


def _workspace(value):
    parse_size(value)
    return value


def _level(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OPTIMIZATION_LEVEL:
        raise EngineError(f"--builder-optimization-level {value} is not accepted; give 0..{MAX_OPTIMIZATION_LEVEL} (TensorRT's default is 3)")
    return value


def _release(value) -> str:
    from rtdeploy.precision.trt_buildable import Release

    Release.parse(value)
    return str(value)


def _dla_core(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EngineError(f"--dla-core {value} is not accepted; DLA cores are numbered from 0")
    return value


@dataclass(frozen=True, kw_only=True)
class TrtBuild:
    """How TensorRT builds the plan: the options that decide an engine's bytes (its reuse record),
    and the timing cache that only speeds the build up."""

    precision: str | None = option(None, "--fp32", "--fp16", "--int8", kind=CHOICE_FLAGS, choices=PRECISIONS, parse=_precision,
                                   help="FP32 engine.|FP16 engine (from an FP16 ONNX graph, made if needed).|"
                                        "INT8 engine (from a calibrated Q/DQ ONNX, made if needed).")
    batch: str | None = option(None, "--batch", metavar="MIN:OPT:MAX", parse=_profile, show_default=False,
                               help="Batch profile, or N for a static one [default: the ONNX's fixed batch, else 1:8:32].")
    workspace: str | int | None = option(None, "--workspace", metavar="SIZE", parse=_workspace,
                                         help="Builder workspace limit, e.g. 2G [default: TensorRT's; half of free memory on Jetson].")
    timing_cache: Path | None = option(None, "--timing-cache", type=Path, path=WRITES, changes_output=False,
                                       help="Timing cache file, read and updated (faster rebuilds).")
    builder_optimization_level: int | None = option(None, "--builder-optimization-level", type=int, parse=_level,
                                                    help="0..5; higher searches longer for faster kernels [TensorRT default 3].")
    dla_core: int | None = option(None, "--dla-core", type=int, parse=_dla_core,
                                  help="Build for this DLA core (Jetson); needs a static --batch N.")
    gpu_fallback: bool = option(False, "--gpu-fallback", kind=FLAG, help="With --dla-core: run layers DLA cannot run on the GPU.",
                                applies=(When("dla_core", lambda v: v is not None, error=EngineError,
                                              message="--gpu-fallback only applies with --dla-core N; add --dla-core 0 or drop --gpu-fallback"),))
    version_compatible: bool = option(False, "--version-compatible", kind=FLAG, help="Plan that later TensorRT runtimes can load.")
    hardware_compatibility: str | None = option(None, "--hardware-compatibility", choices=HARDWARE_COMPATIBILITY, parse=_hardware,
                                                help="Plan for all Ampere+ GPUs, or any GPU of this compute capability.")
    implicit_calibration: bool = option(False, "--implicit-calibration", kind=FLAG,
                                        help="INT8 by TensorRT's entropy calibrator on the FP32 graph (TensorRT 8.6/10.x only).")
    tf32: bool = option(False, "--tf32", kind=FLAG,
                        help="Let FP32 layers run TF32 tensor-core kernels (TensorRT's default; rtdeploy clears it so FP32 is FP32).")


@dataclass(frozen=True, kw_only=True)
class BuildOptions(JsonReport, Progress, TrtBuild, Calibration, ModelChoice, Options):
    """What ``rtdeploy build-engine`` was asked to do: the model to export (or ``onnx``), the
    calibration that makes its INT8/FP16 model when needed, and the TensorRT build options. Each
    option is declared once, in its group (see :mod:`rtdeploy.options`)."""

    error = EngineError

    onnx: Path | None = option(None, "--onnx", type=Path, path=READS, changes_output=False,
                               help="Build from this ONNX (FP32, FP16 graph or INT8 Q/DQ) instead of exporting --model.")
    trt_version: str | None = option(None, "--trt-version", metavar="X.Y", parse=_release, changes_output=False,
                                     help="TensorRT release that will build it, judged where none is installed (e.g. 8.6): "
                                          "opsets and Q/DQ scale types it does not document are refused.")
    calibrate: bool = option(True, "--no-calibrate", kind=NEGATIVE, changes_output=False,
                             help="Never calibrate: --int8 then needs a Q/DQ ONNX.")
    output: Path | None = option(None, "-o", "--output", type=Path, path=WRITES, changes_output=False,
                                 help="Engine file [default: <onnx stem>.<precision>.engine beside the ONNX].")

    @property
    def source_precision(self) -> str:
        """The precision of the ONNX the build starts from (``fp32`` for a model still to export)."""
        if self.onnx is None:
            return "fp32"
        try:
            from rtdeploy.manifests import read_artifact

            manifest = read_artifact(self.onnx, required=False)
            if manifest is not None:
                return manifest.precision
            from rtdeploy.trt.graph_facts import read_graph_facts

            return read_graph_facts(Path(self.onnx)).precision
        except Exception:  # unreadable: the stage says so in its own words; no option is refused for it here
            return "fp32"

    @property
    def calibrates(self) -> bool:
        """True when images are read: TensorRT's implicit calibration, or rtdeploy making the FP16/INT8 model."""
        return self.implicit_calibration or (self.calibrate and self.precision in ("fp16", "int8") and self.source_precision == "fp32")

    @property
    def quantizes(self) -> bool:
        """True when rtdeploy calibrates the FP16/INT8 model the engine is built from (a seeded subset of the images)."""
        return not self.implicit_calibration and self.calibrate and self.precision in ("fp16", "int8") and self.source_precision == "fp32"

    @property
    def calibrates_int8(self) -> bool:
        """True when rtdeploy calibrates the INT8 model the engine is built from."""
        return not self.implicit_calibration and self.calibrate and self.precision == "int8" and self.source_precision == "fp32"

    def explain(self, name: str) -> str:
        if self.implicit_calibration:
            return f"with {opt('implicit_calibration')}"
        if not self.calibrate:
            return f"with {opt('calibrate')}"
        if self.precision not in ("fp16", "int8") or (name == "calibrates_int8" and self.precision != "int8"):
            return f"with --{self.precision}" if self.precision else f"without {opt('precision')} (the ONNX's own precision)"
        return f"with {opt('onnx')} {self.onnx} (already {self.source_precision.upper()})"

    def rules(self) -> None:
        """The rules between build options.

        Raises:
            EngineError, PrecisionError: an option combination that cannot work.
        """
        self._check_dla()
        if self.implicit_calibration and self.precision not in (None, "int8"):
            raise PrecisionError(f"--implicit-calibration is for INT8 only, but --{self.precision} was asked; add --int8 or drop it")
        if self.implicit_calibration and self.calib_dir is None:
            raise PrecisionError("--implicit-calibration needs --calib-dir DIR (images or a .npy/.npz of the model's inputs); "
                                 "or drop it to use the Q/DQ model rtdeploy calibrates (the default)")
        if self.implicit_calibration and not self.calibrate:
            raise PrecisionError("--implicit-calibration and --no-calibrate contradict each other; keep one")
        self.calibration_rules()
        if self.output is not None:
            from rtdeploy.checks import output_file

            output_file(self.output, manifest=True)

    def check_inputs(self) -> None:
        if self.onnx is None:
            self.meta()  # a metadata option the model does not take (a variant of a CIFAR ResNet)

    def writes(self) -> list[tuple[str, Path]]:
        from rtdeploy.files import manifest_path

        return [("output", manifest_path(self.output))] if self.output is not None else []



    def _check_dla(self) -> None:
        if self.dla_core is None:
            return
        if self.batch is not None and not BatchProfile.parse(self.batch).is_static:
            raise EngineError(f"--batch {self.batch} is dynamic, but DLA needs a static profile (MIN = OPT = MAX); give --batch N, e.g. --batch 8")
        if self.precision == "fp32":
            raise PrecisionError("DLA runs FP16 or INT8 layers only; use --fp16 or --int8 with --dla-core")
        if self.hardware_compatibility or self.version_compatible:
            raise EngineError("DLA engines cannot be version- or hardware-compatible; drop --version-compatible / --hardware-compatibility")


def resolve_profile(opts: BuildOptions, fixed_batch: int | None) -> BatchProfile:
    """The profile to build: ``--batch`` if given, else the ONNX's fixed batch, else 1:8:32
    (static 8 on DLA).

    Raises:
        EngineError: a fixed-batch ONNX and a ``--batch`` that differs from it.
    """
    if opts.batch is not None:
        profile = BatchProfile.parse(opts.batch)
        if fixed_batch is not None and profile != BatchProfile(fixed_batch, fixed_batch, fixed_batch):
            raise EngineError(f"the ONNX has a fixed batch of {fixed_batch}, so --batch {opts.batch} cannot be built; "
                              f"use --batch {fixed_batch} or re-export with `rtdeploy export --batch dynamic`")
        return profile
    if fixed_batch is not None:
        return BatchProfile(fixed_batch, fixed_batch, fixed_batch)
    default = BatchProfile.parse(DEFAULT_PROFILE)
    return BatchProfile(default.opt, default.opt, default.opt) if opts.dla_core is not None else default


def engine_target(tensorrt_version: str, compute_capability: str, platform: str, hardware_compatibility: str | None = None) -> str:
    """What a plan is tied to besides its ONNX and options (TensorRT's engine-compatibility rules, see
    :func:`rtdeploy.trt.engine_file.compatibility_problem`): the TensorRT release that built it, the GPU's
    compute capability (an ``ampere+`` plan: any Ampere or newer GPU) and the platform.

    ``"TensorRT 10.3.0, compute 8.7, linux-aarch64"``: an engine input of the reuse rule, so a plan is
    rebuilt, not reused, after ``pip install -U tensorrt``, on another GPU or another platform.
    """
    gpu = "Ampere or newer (hardware-compatible)" if hardware_compatibility == "ampere+" else f"compute {compute_capability}"
    return f"TensorRT {tensorrt_version}, {gpu}, {platform}"


def build_derivation(opts: BuildOptions, precision: str, parent_sha256: str, calibration_fingerprint: str | None,
                     target: str) -> dict:
    """The derivation record of the engine ``opts`` builds from an ONNX with ``parent_sha256`` for
    ``target`` (:func:`engine_target`): the options that decide the plan (:class:`TrtBuild`'s that change
    the output); the calibration data's content fingerprint joins the inputs for implicit calibration."""
    from dataclasses import fields

    from rtdeploy.lineage import derivation, parent_inputs

    inputs = {**(parent_inputs(opts.onnx, parent_sha256) if opts.onnx is not None else {"parent": parent_sha256}), "target": target}
    if calibration_fingerprint is not None:
        inputs["calibration"] = calibration_fingerprint
    plan = {f.name for f in fields(TrtBuild)}
    config = {k: v for k, v in output_fields(opts).items() if k in plan} | {"precision": precision}
    return derivation("build-engine", config, inputs)
