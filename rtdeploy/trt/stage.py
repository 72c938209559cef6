"""The build-engine stage: export and/or quantize as needed, build, verify, write plan + manifest.

Order matters for what a user is left with: every check that needs neither TensorRT nor a GPU
runs first; then the precision ONNX is made (or reused), so it exists even when TensorRT or a GPU
turns out to be missing; then the engine is built, inspected, and only written when the layers
really run in the precision asked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import atomic_path, check_output_path, parent_entry, read_manifest, sha256_file
from rtdeploy.artifacts import write_bytes_atomic
from rtdeploy.errors import EngineError, MissingDependency, OutputError, PrecisionError
from rtdeploy.manifests import PrecisionManifest, new_manifest, read_artifact
from rtdeploy.reuse import exported_onnx, precision_onnx
from rtdeploy.trt.graph_facts import GraphFacts, read_graph_facts
from rtdeploy.trt.options import BatchProfile, BuildOptions, parse_size, resolve_profile

log = logging.getLogger(__name__)

# On unified memory (Jetson) the GPU's workspace is the system's RAM: take part of what is free.
UNIFIED_WORKSPACE_FRACTION = 0.5


@dataclass(frozen=True)
class EngineBuildResult:
    """A written engine.

    Attributes:
        path: the plan file.
        manifest: its manifest (also at ``path.json``).
        onnx: the ONNX the engine was built from (the precision ONNX).
        layers: the layer report (``by_precision``, ``by_device``, ``layers``).
    """

    path: Path
    manifest: dict
    onnx: Path
    layers: dict


def build_engine(opts: BuildOptions, *, trt_module=None, memory=None) -> EngineBuildResult:
    """Run the build-engine stage (see :func:`rtdeploy.api.build_engine`).

    Args:
        opts: the options.
        trt_module: the ``tensorrt`` module (default: the installed one).
        memory: a device-memory object (default: cuda-python on device 0).

    Raises:
        EngineError, PrecisionError, ArtifactError, OutputError: bad options or inputs (before any work
            where possible), a failed build, or an engine without the asked precision's layers.
        MissingDependency: TensorRT, cuda-python or a GPU is missing; the precision ONNX is
            written first and the message names it.
    """
    opts.check()
    if opts.output is not None:
        check_output_path(opts.output)
    if opts.timing_cache is not None:
        check_output_path(opts.timing_cache)
    onnx = _source_onnx(opts)
    read_artifact(onnx, required=False)  # a manifest beside the ONNX must be a valid one: refused here, before any work
    facts = read_graph_facts(onnx)
    precision = opts.precision or facts.precision
    onnx, facts = _precision_onnx(opts, onnx, facts, precision)
    profile = resolve_profile(opts, facts.fixed_batch)
    output = Path(opts.output) if opts.output is not None else default_engine_path(onnx, precision)
    check_output_path(output)
    command = rebuild_command(opts, onnx, precision, profile, output)
    try:
        return _build(opts, onnx, facts, precision, profile, output, command, trt_module, memory)
    except MissingDependency as e:
        raise MissingDependency(f"{e} — nothing lost: {onnx} is ready; build it where TensorRT and a GPU are: {command}") from e


def default_engine_path(onnx: Path, precision: str) -> Path:
    """``resnet50.int8.onnx`` -> ``resnet50.int8.engine``; ``resnet50.onnx`` (fp32) -> ``resnet50.fp32.engine``."""
    stem = onnx.stem
    return onnx.with_name(f"{stem}.engine" if stem.endswith(f".{precision}") else f"{stem}.{precision}.engine")


def rebuild_command(opts: BuildOptions, onnx: Path, precision: str, profile: BatchProfile, output: Path) -> str:
    """The ``rtdeploy build-engine`` command that builds this engine again from ``onnx``."""
    parts = ["rtdeploy build-engine", f"--onnx {onnx.resolve()}", f"--{precision}", f"--batch {profile}"]
    if opts.implicit_calibration:
        parts.append("--implicit-calibration" + (f" --calib-dir {Path(opts.calib_dir).resolve()}" if opts.calib_dir else ""))
    for flag, value in (("--workspace", opts.workspace), ("--builder-optimization-level", opts.builder_optimization_level),
                        ("--dla-core", opts.dla_core), ("--hardware-compatibility", opts.hardware_compatibility)):
        if value is not None:
            parts.append(f"{flag} {value}")
    parts += [f for f, on in (("--gpu-fallback", opts.gpu_fallback), ("--version-compatible", opts.version_compatible)) if on]
    if opts.timing_cache is not None:
        parts.append(f"--timing-cache {Path(opts.timing_cache).resolve()}")
    parts.append(f"-o {output.resolve()}")
    return " ".join(parts)


# -- the ONNX to build from -----------------------------------------------------------------------
def _source_onnx(opts: BuildOptions) -> Path:
    if opts.onnx is not None:
        return Path(opts.onnx)
    depth = opts.depth if opts.depth is not None else 50
    return exported_onnx(Path(f"resnet{depth}.onnx"), depth)


def _precision_onnx(opts: BuildOptions, onnx: Path, facts: GraphFacts, precision: str) -> tuple[Path, GraphFacts]:
    if precision == facts.precision or (precision == "int8" and opts.implicit_calibration and facts.precision == "fp32"):
        return onnx, facts
    if facts.precision != "fp32":
        raise PrecisionError(f"{onnx.name} carries {facts.precision.upper()}, not {precision.upper()}; build it with "
                             f"--{facts.precision}, or give the FP32 ONNX so build-engine makes the {precision.upper()} model")
    if precision == "int8" and not opts.calibrate:
        raise PrecisionError(f"--int8 with --no-calibrate needs a Q/DQ ONNX, but {onnx.name} has no QuantizeLinear/DequantizeLinear "
                             "nodes; drop --no-calibrate to calibrate (--calib-dir DIR, or the default calibration data), "
                             "or give the ONNX that `rtdeploy quantize --int8` wrote")
    made = _quantize(onnx, precision, opts.calib_dir)
    made_facts = read_graph_facts(made)
    if made_facts.precision != precision:
        raise PrecisionError(f"{made.name} should carry {precision.upper()} but carries {made_facts.precision.upper()}; "
                             f"delete it and run again")
    return made, made_facts


def _quantize(onnx: Path, precision: str, calib_dir: Path | None) -> Path:
    if precision != "int8" or calib_dir is None:
        return precision_onnx(onnx, precision)
    # Reuse an INT8 model only when its manifest shows it was calibrated on the same data.
    wanted = str(Path(calib_dir).resolve())

    def same_data(manifest: dict) -> bool:
        recorded = manifest.get("calibration") or {}
        return any(str(v) == wanted for v in recorded.values() if isinstance(v, (str, Path)))

    return precision_onnx(onnx, precision, accept=same_data, calib_dir=calib_dir)


# -- building -------------------------------------------------------------------------------------
def _build(opts, onnx, facts, precision, profile, output, command, trt_module, memory) -> EngineBuildResult:
    from rtdeploy.trt.builder import BuildRequest, build_plan, create_builder, make_logger
    from rtdeploy.trt.features import Features, plan_precision
    from rtdeploy.trt.loader import import_tensorrt

    trt = trt_module if trt_module is not None else import_tensorrt()
    features = Features.detect(trt)
    plan = plan_precision(features, precision, facts, implicit_calibration=opts.implicit_calibration,
                          dla=opts.dla_core is not None)
    logger = make_logger(trt)
    builder = create_builder(trt, logger)
    if memory is None:
        from rtdeploy.trt.device_memory import open_device_memory

        memory = open_device_memory()
    device = memory.device_info()
    calibrator, calibration = _calibrator(trt, opts, onnx, facts, profile, output, memory) if plan.calibrator else (None, None)
    request = BuildRequest(
        onnx=onnx, facts=facts, plan=plan, profile=profile, workspace_bytes=resolve_workspace(opts.workspace, device),
        timing_cache=_read_timing_cache(opts.timing_cache), optimization_level=opts.builder_optimization_level,
        dla_core=opts.dla_core, gpu_fallback=opts.gpu_fallback, version_compatible=opts.version_compatible,
        hardware_compatibility=opts.hardware_compatibility, calibrator=calibrator)
    start = time.perf_counter()
    built = build_plan(trt, request, logger=logger, builder=builder)
    seconds = time.perf_counter() - start
    layers = _inspect(trt, logger, built.plan, facts, profile, precision)
    if calibration is not None:
        calibration["cache_sha256"] = sha256_file(calibration["cache"]) if Path(calibration["cache"]).is_file() else None
    fields = _manifest_fields(trt, opts, onnx, facts, plan, profile, device, built, request, layers, calibration, seconds, command)
    try:
        with atomic_path(output, manifest=lambda tmp: new_manifest("engine", tmp, **fields)) as tmp:
            tmp.write_bytes(built.plan)
    except OSError as e:
        raise OutputError(f"could not write {output}: {e.strerror or e}; free space or choose another -o path") from e
    if opts.timing_cache is not None and built.timing_cache is not None:
        write_bytes_atomic(opts.timing_cache, built.timing_cache)
    log.info("built %s in %.1fs", output, seconds)
    return EngineBuildResult(path=output, manifest=read_manifest(output), onnx=onnx, layers=layers)


def resolve_workspace(requested: str | int | None, device) -> int | None:
    """The workspace limit in bytes: as asked (checked against the device), a share of free memory
    on unified-memory devices, or None (TensorRT's default) on discrete GPUs.

    Raises:
        EngineError: the asked workspace is larger than the device's memory.
    """
    size = parse_size(requested)
    if size is not None:
        if size > device.total_bytes:
            raise EngineError(f"--workspace {requested} is larger than the memory of this GPU ({device.name}: "
                              f"{device.total_bytes / 2**30:.1f} GiB); give at most {device.free_bytes / 2**30:.1f}G (free now)")
        return size
    if device.integrated:
        return int(device.free_bytes * UNIFIED_WORKSPACE_FRACTION)
    return None


def _read_timing_cache(path: Path | None) -> bytes | None:
    if path is None:
        return None
    p = Path(path)
    return p.read_bytes() if p.is_file() else b""


def _calibrator(trt, opts, onnx: Path, facts: GraphFacts, profile: BatchProfile, output: Path, memory):
    from rtdeploy.data import open_source
    from rtdeploy.models.metadata import ModelMeta
    from rtdeploy.trt.calibrator import make_entropy_calibrator

    m = read_artifact(onnx, required=False)
    if m is None or m.model is None:
        raise PrecisionError(f"--implicit-calibration needs the model's preprocessing from {onnx.name}'s manifest, which is missing; "
                             "re-export with `rtdeploy export`")
    source = open_source(opts.calib_dir, ModelMeta.from_dict(m.model.to_dict()))
    fingerprint = source.fingerprint()
    cache = output.with_name(f"{onnx.stem}.{fingerprint[:12]}.calib.cache")
    batches = (b.images for b in source.batches(profile.opt))
    calibrator = make_entropy_calibrator(trt, batches, batch_size=profile.opt, input_name=facts.input_name,
                                         memory=memory, cache_path=cache)
    return calibrator, {"method": "tensorrt-entropy2", "source": getattr(source, "description", str(opts.calib_dir)),
                        "source_fingerprint": fingerprint, "cache": str(cache)}


def _inspect(trt, logger, plan: bytes, facts: GraphFacts, profile: BatchProfile, precision: str) -> dict:
    from rtdeploy.trt.engine_file import create_runtime
    from rtdeploy.trt.engine_report import check_precision_realized, inspect_engine

    runtime = create_runtime(trt, logger)
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise EngineError("TensorRT could not load the engine it just built; run with -vv for its log")
    report = inspect_engine(trt, engine, facts.input_name, (profile.opt, *facts.sample_shape))
    report["verified"] = check_precision_realized(report, precision)
    return report


def _manifest_fields(trt, opts, onnx, facts, plan, profile, device, built, request, layers, calibration, seconds, command) -> dict:
    from rtdeploy.trt.loader import trt_version

    onnx_manifest = read_artifact(onnx, required=False)
    if calibration is None and plan.precision == "int8":
        recorded = onnx_manifest.calibration if isinstance(onnx_manifest, PrecisionManifest) else None
        calibration = {"method": "qdq", "onnx": recorded.to_dict() if recorded else None}
    return {
        "precision": plan.precision,
        "model": onnx_manifest.model.to_dict() if onnx_manifest is not None and onnx_manifest.model is not None else None,
        "parent": parent_entry(onnx),
        "tensorrt": {"version": trt_version(trt), "network_flags": built.network_flags,
                     "builder_flags": built.builder_flags, "strongly_typed": plan.strongly_typed, "method": plan.method},
        "device": {k: v for k, v in device.to_dict().items() if k != "free_bytes"},
        "profile": {"input": facts.input_name, "sample_shape": list(facts.sample_shape), **profile.to_dict()},
        "calibration": calibration,
        "build": {"seconds": round(seconds, 2), "workspace_bytes": request.workspace_bytes,
                  "builder_optimization_level": opts.builder_optimization_level,
                  "timing_cache": str(Path(opts.timing_cache).resolve()) if opts.timing_cache else None,
                  "dla_core": opts.dla_core, "gpu_fallback": opts.gpu_fallback, "version_compatible": opts.version_compatible,
                  "hardware_compatibility": opts.hardware_compatibility},
        "dla": built.dla_placement,
        "layers": {"verified": layers["verified"], "detailed": layers["detailed"], "by_precision": layers["by_precision"],
                   "by_device": layers["by_device"], "list": layers["layers"]},
        "rebuild_command": command,
    }
