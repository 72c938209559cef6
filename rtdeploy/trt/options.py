"""Build options, checked before any work: the batch profile, sizes, and their combinations.

Nothing here imports TensorRT; every check that can be done on the options alone is done here, so
a bad option fails in a second instead of after an export and a calibration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import EngineError, PrecisionError

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


@dataclass(frozen=True)
class BuildOptions:
    """What ``rtdeploy build-engine`` was asked to do (see :func:`rtdeploy.api.build_engine`).

    Attributes:
        depth: the ResNet to export when ``onnx`` is not given.
        model: the registry model to export when ``onnx`` is not given (wins over ``depth``).
        onnx: an existing ONNX file (FP32, FP16 graph, or INT8 Q/DQ).
        precision: ``fp32``, ``fp16``, ``int8``, or None to take the ONNX's own precision.
        calib_dir: calibration images or tensor file for INT8 (None: the precision stage's default).
        calibrate: False: never calibrate; INT8 then needs an ONNX that already has Q/DQ nodes.
        batch: the profile text, ``MIN:OPT:MAX`` or ``N``; None: the ONNX's fixed batch, or 1:8:32.
        workspace: builder workspace limit (``2G``); None: TensorRT's default, or a share of free
            memory on unified-memory devices (Jetson).
        timing_cache: a file read before and written after the build (created when missing).
        builder_optimization_level: 0..5 (TensorRT's default 3 when None).
        dla_core: DLA core index (Jetson); needs a static profile.
        gpu_fallback: let layers DLA cannot run fall back to the GPU.
        version_compatible: build a plan later TensorRT runtimes can load.
        hardware_compatibility: ``ampere+`` or ``same-cc`` (None: this GPU's compute capability only).
        implicit_calibration: INT8 by TensorRT's entropy calibrator on the FP32 graph (8.6 / 10.x only).
        tf32: leave ``BuilderFlag.TF32`` on (TensorRT's default), so FP32 layers may run TF32 tensor-core
            kernels; by default it is cleared, as Polygraphy does, and FP32 layers run FP32.
        trt_version: the TensorRT release that will build the ONNX, judged where none is installed
            (``8.6``, ``10.3``): opsets and Q/DQ scale types it does not document are refused.
        output: the engine file (manifest beside it).
        progress: bars on stderr for calibration and, on TensorRT 10 and later, the build's phases.
    """

    depth: int | None = 50
    model: str | None = None
    onnx: Path | None = None
    precision: str | None = None
    calib_dir: Path | None = None
    calibrate: bool = True
    batch: str | None = None
    workspace: str | int | None = None
    timing_cache: Path | None = None
    builder_optimization_level: int | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    version_compatible: bool = False
    hardware_compatibility: str | None = None
    implicit_calibration: bool = False
    tf32: bool = False
    trt_version: str | None = None
    output: Path | None = None
    progress: bool = False

    def check(self) -> None:
        """Every check that needs neither the ONNX nor TensorRT.

        Raises:
            EngineError, PrecisionError: an option or a combination that cannot work.
        """
        if self.precision is not None and self.precision not in PRECISIONS:
            raise PrecisionError(f"precision {self.precision!r} is not accepted; use one of {', '.join(PRECISIONS)}")
        if self.batch is not None:
            BatchProfile.parse(self.batch)
        parse_size(self.workspace)
        level = self.builder_optimization_level
        if level is not None and not 0 <= level <= MAX_OPTIMIZATION_LEVEL:
            raise EngineError(f"--builder-optimization-level {level} is not accepted; give 0..{MAX_OPTIMIZATION_LEVEL} (TensorRT's default is 3)")
        if self.hardware_compatibility is not None and self.hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise EngineError(f"--hardware-compatibility {self.hardware_compatibility!r} is not accepted; use ampere+ or same-cc")
        self._check_dla()
        if self.implicit_calibration and self.precision not in (None, "int8"):
            raise PrecisionError(f"--implicit-calibration is for INT8 only, but --{self.precision} was asked; add --int8 or drop it")
        if self.implicit_calibration and self.calib_dir is None:
            raise PrecisionError("--implicit-calibration needs --calib-dir DIR (images or a .npy/.npz of the model's inputs); "
                                 "or drop it to use the Q/DQ model rtdeploy calibrates (the default)")
        if self.implicit_calibration and not self.calibrate:
            raise PrecisionError("--implicit-calibration and --no-calibrate contradict each other; keep one")
        if self.trt_version is not None:
            from rtdeploy.precision.trt_buildable import Release

            Release.parse(self.trt_version)
        if self.output is not None:
            from rtdeploy.checks import output_file

            output_file(self.output, manifest=True)

    def _check_dla(self) -> None:
        if self.dla_core is None:
            if self.gpu_fallback:
                raise EngineError("--gpu-fallback only applies with --dla-core N; add --dla-core 0 or drop --gpu-fallback")
            return
        if self.dla_core < 0:
            raise EngineError(f"--dla-core {self.dla_core} is not accepted; DLA cores are numbered from 0")
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


# Options that do not change the plan's bytes, or whose content is recorded as an input instead.
OUTPUT_NEUTRAL = frozenset({"depth", "model", "onnx", "calib_dir", "timing_cache", "output", "calibrate", "progress", "trt_version"})


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
    ``target`` (:func:`engine_target`); the calibration data's content fingerprint joins the inputs for
    implicit calibration."""
    from rtdeploy.artifacts import config_fields, derivation, parent_inputs

    inputs = {**(parent_inputs(opts.onnx, parent_sha256) if opts.onnx is not None else {"parent": parent_sha256}), "target": target}
    if calibration_fingerprint is not None:
        inputs["calibration"] = calibration_fingerprint
    config = config_fields(opts, exclude=OUTPUT_NEUTRAL) | {"precision": precision}
    return derivation("build-engine", config, inputs)
