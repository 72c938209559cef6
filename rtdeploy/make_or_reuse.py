"""Make or reuse the artifacts a command needs: the ONNX, its FP16/INT8 model, its engine.

The one place where one artifact is made from another on a caller's behalf (``build-engine``
without a ready model, the bench sweep, ``rtdeploy run``). It calls the stages directly and names
files by :func:`rtdeploy.lineage.derived_path`. The reuse rule is
:func:`rtdeploy.lineage.reuse_verdict`: an existing file is reused only when it is intact and
its manifest's derivation record — the parent's sha256, the stage's normalised options and the
content fingerprint of every input the stage read (calibration data included) — equals what the
stage would record now. Every decision comes back with its reason, for the user to see.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtdeploy.files import sha256_file
from rtdeploy.lineage import derived_path, reuse_verdict
from rtdeploy.errors import RtDeployError
from rtdeploy.export.onnx_export import export_derivation, export_onnx
from rtdeploy.export.options import ExportConfig, export_path
from rtdeploy.precision.reuse_record import calibration_fingerprint, quantize_derivation
from rtdeploy.precision.quantize import QuantizeConfig, output_of, quantize
from rtdeploy.trt.options import BuildOptions, build_derivation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Derived:
    """An artifact a command needs, made or reused.

    Attributes:
        path: the artifact.
        made: True when the stage ran now, False when an existing file was reused.
        why: why it was reused, or why the existing file (if any) could not be.
        result: the stage's result object when it ran (None when reused).
    """

    path: Path
    made: bool
    why: str
    result: Any = None

    @property
    def status(self) -> str:
        """``made`` or ``reused``."""
        return "made" if self.made else "reused"


def _reuse(path: Path, wanted: dict | None, force: bool) -> tuple[bool, str]:
    if force:
        return False, "forced"
    if wanted is None:
        return False, "its inputs could not be fingerprinted"
    ok, why = reuse_verdict(path, wanted)
    if ok:
        log.info("reusing %s (%s)", path, why)
    return ok, why


def exported(cfg: ExportConfig, *, force: bool = False) -> Derived:
    """``cfg.output``: reused when it records the same export options and weights, else exported.

    Raises:
        RtDeployError: as :func:`rtdeploy.export.export_onnx`.
    """
    out = export_path(cfg)
    ok, why = _reuse(out, None if force else _wanted(export_derivation, cfg), force)
    if ok:
        return Derived(out, False, why)
    result = export_onnx(cfg)
    return Derived(result.path, True, why, result)


def quantized(cfg: QuantizeConfig, *, force: bool = False) -> Derived:
    """The FP16/INT8 model ``cfg`` describes (at ``cfg.output``, default ``X.<precision>.onnx``, or
    ``X.int8-cpu.onnx`` for the onnxruntime-CPU form):
    reused when made from the parent's current bytes with the same options and calibration data.

    Raises:
        RtDeployError: as :func:`rtdeploy.precision.quantize.quantize`.
    """
    out = output_of(cfg)
    cfg = dataclasses.replace(cfg, output=out)
    ok, why = _reuse(out, None if force else _wanted(quantize_wanted, cfg), force)
    if ok:
        return Derived(out, False, why)
    result = quantize(cfg)
    return Derived(result.path, True, why, result)


def _wanted(record, *args) -> dict | None:
    """``record(*args)``, or None when an input cannot be read: the stage then runs and reports
    what is wrong in its own words."""
    try:
        return record(*args)
    except (RtDeployError, OSError, KeyError, TypeError, ValueError):
        return None


def quantize_wanted(cfg: QuantizeConfig) -> dict:
    """The derivation record the model ``cfg`` describes would carry (its parent and data read now).

    Raises:
        ArtifactError, DataError: the parent's manifest or the calibration data cannot be read.
    """
    from rtdeploy.manifests import read_onnx

    return quantize_derivation(cfg, sha256_file(cfg.model), calibration_fingerprint(cfg, read_onnx(cfg.model).model))


def engine_wanted(opts: BuildOptions, precision: str) -> dict:
    """The derivation record an engine built from ``opts.onnx`` with ``opts`` here, now, would carry:
    the TensorRT release, GPU and platform of this machine are an input (a plan runs only there).

    Raises:
        DataError: implicit calibration's data cannot be opened.
        MissingDependency: TensorRT, cuda-python or a GPU is missing.
    """
    from rtdeploy.trt.stage import target_here

    fingerprint = None
    if opts.implicit_calibration and opts.calib_dir is not None:
        from rtdeploy.data import open_source
        from rtdeploy.manifests import read_onnx

        fingerprint = open_source(opts.calib_dir, read_onnx(opts.onnx).model).fingerprint()
    return build_derivation(opts, precision, sha256_file(opts.onnx), fingerprint, target_here(opts.hardware_compatibility))


def source_onnx(opts: BuildOptions, *, force: bool = False) -> tuple[Path, str]:
    """The ONNX ``opts`` builds from, in the precision it asks, made or reused; and that precision.

    ``opts.onnx`` None: ``opts.model`` (or ResNet-``opts.depth``) is exported to ``<name>.onnx``
    (seed-0 weights). A given ONNX may come from ``rtdeploy export`` or ``rtdeploy import``: only
    its manifest is read, never the export's options.
    An FP32 ONNX with ``--fp16``/``--int8`` gets its precision model beside it
    (:func:`quantized`, calibrated on ``opts.calib_dir``), except for implicit calibration.

    Raises:
        PrecisionError: the ONNX carries another precision than asked.
        RtDeployError: as the stages.
    """
    from rtdeploy.trt.graph_facts import read_graph_facts
    from rtdeploy.trt.stage import check_source_precision

    from rtdeploy.models.options import model_choice_of
    from rtdeploy.precision.options import calibration_of

    onnx = Path(opts.onnx) if opts.onnx is not None else None
    if onnx is None:
        onnx = exported(ExportConfig(**model_choice_of(opts)), force=force).path
    facts = read_graph_facts(onnx)
    precision = opts.precision or facts.precision
    if facts.precision == "fp32" and precision != "fp32" and opts.calibrate and not opts.implicit_calibration:
        cfg = QuantizeConfig(model=onnx, int8=precision == "int8", fp16=precision == "fp16", progress=opts.progress,
                             **calibration_of(opts, int8=precision == "int8"))
        onnx = quantized(cfg, force=force).path
        facts = read_graph_facts(onnx)
    check_source_precision(opts, onnx, facts, precision)
    return onnx, precision


def engine_from(opts: BuildOptions):
    """``rtdeploy build-engine``: the source ONNX made or reused as needed, then a new engine.

    Returns:
        :class:`rtdeploy.trt.EngineBuildResult`.

    Raises:
        as :func:`source_onnx` and :func:`rtdeploy.trt.build_engine`.
    """
    from rtdeploy.trt import build_engine
    from rtdeploy.trt.stage import check_trt_builds

    opts.check()
    if opts.onnx is not None:
        check_trt_builds(opts, Path(opts.onnx))
    onnx, precision = source_onnx(opts)
    return build_engine(dataclasses.replace(opts, onnx=onnx, precision=precision, **_consumed(opts)))


def _consumed(opts: BuildOptions) -> dict:
    """The options the source ONNX has used up (which model to export, how to calibrate it), back
    at their defaults: the engine is built from that ONNX now (TensorRT's implicit calibration
    still reads the images)."""
    from rtdeploy.models.options import ModelChoice
    from rtdeploy.options import default_of
    from rtdeploy.precision.options import Calibration

    groups = (ModelChoice,) if opts.implicit_calibration else (ModelChoice, Calibration)
    return {f.name: default_of(f) for g in groups for f in dataclasses.fields(g)}


def engine(opts: BuildOptions, *, force: bool = False) -> Derived:
    """The engine of ``opts.onnx`` (which already carries ``opts.precision``), at ``opts.output``
    (default ``X.<precision>.engine``): reused when its manifest records the same ONNX bytes and
    build options, else built.

    Raises:
        MissingDependency: TensorRT, cuda-python or a GPU is missing.
        RtDeployError: as :func:`rtdeploy.trt.build_engine`.
    """
    from rtdeploy.trt import build_engine

    precision = opts.precision or "fp32"
    out = Path(opts.output) if opts.output is not None else derived_path(opts.onnx, precision, ".engine")
    opts = dataclasses.replace(opts, output=out, precision=precision)
    wanted = None if force else _wanted(engine_wanted, opts, precision)
    ok, why = _reuse(out, wanted, force)
    if ok:
        return Derived(out, False, why)
    if why == "its target changed":
        why = f"it was built for {_recorded_target(out)}; this machine is {wanted['inputs']['target']}"
    result = build_engine(opts)
    return Derived(result.path, True, why, result)


def _recorded_target(engine_path: Path) -> str:
    from rtdeploy.manifests import read_artifact

    try:
        manifest = read_artifact(engine_path, required=False)
    except RtDeployError:
        manifest = None
    derivation = manifest.derivation if manifest is not None else None
    return (derivation.inputs if derivation is not None else {}).get("target") or "an unrecorded TensorRT, GPU and platform"
