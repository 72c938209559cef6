"""The build-engine stage: build from a ready precision ONNX, verify, write plan + manifest.

The ONNX arrives in the precision asked (``rtdeploy.make_or_reuse`` exports and quantizes first, so the
precision ONNX exists even when TensorRT or a GPU turns out to be missing). Every check that needs
neither TensorRT nor a GPU runs first; then the engine is built, inspected, and only written when
its compute layers really run in the precision asked.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import ArtifactKind, check_matches_manifest, parent_entry, read_manifest
from rtdeploy.files import atomic_path
from rtdeploy.lineage import derived_path
from rtdeploy.files import sha256_file
from rtdeploy.files import write_bytes_atomic, write_failure
from rtdeploy.errors import EngineError, MissingDependency, PrecisionError
from rtdeploy.guard import refuse_replacing_another_kind
from rtdeploy.library_errors import stage_boundary
from rtdeploy.options import guard
from rtdeploy.manifests import PrecisionManifest, new_manifest, read_artifact
from rtdeploy.trt.graph_facts import GraphFacts, read_graph_facts
from rtdeploy.trt.options import BatchProfile, BuildOptions, build_derivation, engine_target, parse_size, resolve_profile

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


@stage_boundary("build-engine", EngineError)
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
    if opts.onnx is None:
        raise EngineError("the build-engine stage needs an ONNX; rtdeploy.make_or_reuse.engine_from exports and quantizes one first")
    onnx = Path(opts.onnx)
    _check_manifest(onnx)
    facts = read_graph_facts(onnx)
    check_trt_builds(opts, onnx, trt_module)
    precision = opts.precision or facts.precision
    check_source_precision(opts, onnx, facts, precision)
    profile = resolve_profile(opts, facts.fixed_batch)
    output = Path(opts.output) if opts.output is not None else default_engine_path(onnx, precision)
    if opts.output is None:
        guard(dataclasses.replace(opts, output=output))  # the guard, on the default path too
    refuse_replacing_another_kind(output, ArtifactKind("engine", precision))
    command = rebuild_command(opts, onnx, precision, profile, output)
    try:
        return _build(opts, onnx, facts, precision, profile, output, command, trt_module, memory)
    except MissingDependency as e:
        raise MissingDependency(f"{e} — nothing lost: {onnx} is ready; build it where {_which_trt(onnx)} and a GPU are: {command}") from e


def check_trt_builds(opts: BuildOptions, onnx: Path, trt_module=None) -> None:
    """Refuse, before any work, an ONNX the TensorRT that would build it does not take (the
    installed one, or ``opts.trt_version`` where none is; see :mod:`rtdeploy.precision.trt_buildable`).

    Raises:
        EngineError: the CPU form, asymmetric or UINT8 Q/DQ, an opset or scale type the release does not document.
    """
    from rtdeploy.precision.trt_buildable import check_buildable, release_to_judge
    from rtdeploy.trt.loader import installed_version, trt_version

    installed = trt_version(trt_module) if trt_module is not None else installed_version()
    release = release_to_judge(opts.trt_version, installed)
    if onnx.is_file():  # else read_graph_facts names what it is (a FIFO would block a reader)
        check_buildable(onnx, release, manifest=read_manifest(onnx, required=False))


def _which_trt(onnx: Path) -> str:
    """``TensorRT`` or ``TensorRT 10.0 or later`` (when older releases do not document the model)."""
    from rtdeploy.precision.trt_buildable import Release, oldest_release_for

    oldest = oldest_release_for(onnx)
    return f"TensorRT {oldest} or later" if oldest is not None and oldest > Release(8, 6) else "TensorRT"


def _check_manifest(onnx: Path) -> None:
    """A manifest beside the ONNX must be a valid one, of these very bytes: refused here, before any work."""
    manifest = read_artifact(onnx, required=False)
    if manifest is not None:
        check_matches_manifest(onnx, manifest.sha256, remedy=f"re-run the stage that made it, or move {onnx.name}.json away "
                               "to build from the file as it is")


def target_here(hardware_compatibility: str | None = None, *, device: int = 0) -> str:
    """The :func:`rtdeploy.trt.options.engine_target` of a build on this machine now.

    Raises:
        MissingDependency: TensorRT, cuda-python or a GPU is missing (nothing can be built or run here).
    """
    from rtdeploy.trt.device_memory import open_device_memory
    from rtdeploy.trt.engine_file import this_platform
    from rtdeploy.trt.loader import import_tensorrt, trt_version

    version = trt_version(import_tensorrt())
    memory = open_device_memory(device)
    try:
        info = memory.device_info()
    finally:
        memory.close()
    return engine_target(version, info.compute_capability, this_platform(), hardware_compatibility)


def default_engine_path(onnx: Path, precision: str) -> Path:
    """``resnet50.int8.onnx`` -> ``resnet50.int8.engine``; ``resnet50.onnx`` (fp32) -> ``resnet50.fp32.engine``."""
    return derived_path(onnx, precision, ".engine")


def rebuild_command(opts: BuildOptions, onnx: Path, precision: str, profile: BatchProfile, output: Path) -> str:
    """The ``rtdeploy build-engine`` command that builds this engine again from ``onnx``: the flags
    of the options that decide the plan (:class:`~rtdeploy.trt.options.TrtBuild`), from their declarations."""
    import shlex

    from rtdeploy.options import command_line, declared
    from rtdeploy.trt.options import TrtBuild

    implicit_data = Path(opts.calib_dir).resolve() if opts.implicit_calibration and opts.calib_dir else None
    plan = dataclasses.replace(opts, precision=precision, batch=str(profile), calib_dir=implicit_data,
                               timing_cache=Path(opts.timing_cache).resolve() if opts.timing_cache else None)
    keep = {f.name for f in dataclasses.fields(TrtBuild)} | {"calib_dir"}  # the images TensorRT's own calibration reads
    skip = {f.name for f, _ in declared(BuildOptions)} - keep
    words = ["--onnx", str(onnx.resolve()), *command_line(plan, skip=skip), "-o", str(output.resolve())]
    return " ".join(["rtdeploy build-engine", *(shlex.quote(w) for w in words)])


# -- the ONNX to build from -----------------------------------------------------------------------
def check_source_precision(opts: BuildOptions, onnx: Path, facts: GraphFacts, precision: str) -> None:
    """The ONNX must already carry ``precision`` (or be FP32 for TensorRT's implicit INT8 calibration).

    Raises:
        PrecisionError: it carries another precision; the message says how to get the right one.
    """
    if precision == facts.precision or (precision == "int8" and opts.implicit_calibration and facts.precision == "fp32"):
        return
    if facts.precision != "fp32":
        raise PrecisionError(f"{onnx.name} carries {facts.precision.upper()}, not {precision.upper()}; build it with "
                             f"--{facts.precision}, or give the FP32 ONNX so build-engine makes the {precision.upper()} model")
    if precision == "int8" and not opts.calibrate:
        raise PrecisionError(f"--int8 with --no-calibrate needs a Q/DQ ONNX, but {onnx.name} has no QuantizeLinear/DequantizeLinear "
                             "nodes; drop --no-calibrate to calibrate (--calib-dir DIR, or the default calibration data), "
                             "or give the ONNX that `rtdeploy quantize --int8` wrote")
    raise PrecisionError(f"{onnx.name} is FP32; make its {precision.upper()} model first (`rtdeploy quantize {onnx} --{precision}`), "
                         f"or use `rtdeploy build-engine --onnx {onnx} --{precision}`, which does that for you")


# -- building -------------------------------------------------------------------------------------
def _build(opts, onnx, facts, precision, profile, output, command, trt_module, memory) -> EngineBuildResult:
    from rtdeploy.trt.builder import BuildRequest, build_plan, create_builder, make_logger
    from rtdeploy.trt.features import Features, plan_precision
    from rtdeploy.trt.loader import import_tensorrt

    trt = trt_module if trt_module is not None else import_tensorrt()
    features = Features.detect(trt)
    features.refuse_missing(version_compatible=opts.version_compatible, hardware_compatibility=opts.hardware_compatibility,
                            optimization_level=opts.builder_optimization_level)
    plan = plan_precision(features, precision, facts, implicit_calibration=opts.implicit_calibration,
                          dla=opts.dla_core is not None)
    logger = make_logger(trt)
    builder = create_builder(trt, logger)
    if memory is None:
        from rtdeploy.trt.device_memory import open_device_memory

        memory = open_device_memory()
    device = memory.device_info()
    _check_hardware_compatibility(opts, device)
    kept = _kept_float(onnx)
    kept += [n for n in facts.float_weighted if n not in kept]  # a Q/DQ graph's unquantized layers are asked in float
    calibrator, calibration = _calibrator(trt, opts, onnx, facts, profile, output, memory) if plan.calibrator else (None, None)
    request = BuildRequest(
        onnx=onnx, facts=facts, plan=plan, profile=profile, workspace_bytes=resolve_workspace(opts.workspace, device),
        timing_cache=_read_timing_cache(opts.timing_cache), optimization_level=opts.builder_optimization_level,
        dla_core=opts.dla_core, gpu_fallback=opts.gpu_fallback, version_compatible=opts.version_compatible,
        hardware_compatibility=opts.hardware_compatibility, calibrator=calibrator, keep_fp32=tuple(kept), progress=opts.progress,
        tf32=opts.tf32)
    start = time.perf_counter()
    try:
        built = build_plan(trt, request, logger=logger, builder=builder)
    finally:
        if calibrator is not None:
            calibrator.release()
    seconds = time.perf_counter() - start
    # Explicit precision (strongly typed graphs, Q/DQ layers) must be built as asked; weak typing may choose.
    strict = plan.strongly_typed or (precision == "int8" and not plan.calibrator)
    layers = _inspect(trt, logger, built.plan, facts, profile, precision, kept, opts, command, strict)
    if calibration is not None:
        calibration["cache_sha256"] = sha256_file(calibration["cache"]) if Path(calibration["cache"]).is_file() else None
    fields = _manifest_fields(trt, opts, onnx, facts, plan, profile, device, built, request, layers, calibration, seconds, command)
    try:
        with atomic_path(output, manifest=lambda tmp: new_manifest("engine", tmp, **fields)) as tmp:
            tmp.write_bytes(built.plan)
    except OSError as e:
        raise write_failure(output, e) from e
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
    from rtdeploy.trt.calibrator import make_entropy_calibrator

    m = read_artifact(onnx, required=False)
    if m is None or m.model is None:
        raise PrecisionError(f"--implicit-calibration needs the model's preprocessing from {onnx.name}'s manifest, which is missing; "
                             "re-export with `rtdeploy export`")
    source = open_source(opts.calib_dir, m.model)
    fingerprint = source.fingerprint()
    cache = output.with_name(f"{onnx.stem}.{fingerprint[:12]}.calib.cache")
    batches = (b.images for b in source.batches(profile.opt))
    calibrator = make_entropy_calibrator(trt, batches, batch_size=profile.opt, input_name=facts.input_name,
                                         memory=memory, cache_path=cache)
    return calibrator, {"method": "tensorrt-entropy2", "source": getattr(source, "description", str(opts.calib_dir)),
                        "source_fingerprint": fingerprint, "cache": str(cache)}


def _kept_float(onnx: Path) -> list[str]:
    """The ONNX nodes the precision stage kept in float (``--keep-fp``, sensitivity fallbacks, the FP16 guard)."""
    m = read_artifact(onnx, required=False)
    return m.kept_float() if m is not None else []


def _check_hardware_compatibility(opts: BuildOptions, device) -> None:
    from rtdeploy.trt.engine_file import hardware_compatibility_problem

    problem = hardware_compatibility_problem(opts.hardware_compatibility, device)
    if problem:
        raise EngineError(problem)


def _inspect(trt, logger, plan: bytes, facts: GraphFacts, profile: BatchProfile, precision: str, kept: list[str],
             opts: BuildOptions, command: str, strict: bool) -> dict:
    from rtdeploy.trt.engine_file import deserialize_plan
    from rtdeploy.trt.engine_report import check_precision_realized, inspect_engine

    # The same deserialization as loading the file later (version-compatible plans need host code allowed).
    engine, _runtime = deserialize_plan(trt, plan, logger=logger, version_compatible=opts.version_compatible,
                                        what="the engine TensorRT just built", rebuild=command)
    report = inspect_engine(trt, engine, facts.input_name, (profile.opt, *facts.sample_shape))
    report["verdict"] = check_precision_realized(report, precision, frozenset(kept), strict=strict, tf32=opts.tf32)
    report["kept_float"] = list(kept)
    return report


def _manifest_fields(trt, opts, onnx, facts, plan, profile, device, built, request, layers, calibration, seconds, command) -> dict:
    from rtdeploy.trt.engine_file import this_platform
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
                  "hardware_compatibility": opts.hardware_compatibility, "precision_constraints": built.precision_constraints,
                  "tf32": opts.tf32},
        "dla": built.dla_placement,
        "platform": this_platform(),
        "layers": _layers_entry(layers),
        "rebuild_command": command,
        "derivation": build_derivation(opts, plan.precision, sha256_file(onnx), (calibration or {}).get("source_fingerprint"),
                                       engine_target(trt_version(trt), device.compute_capability, this_platform(),
                                                     opts.hardware_compatibility)),
    }


def _layers_entry(report: dict) -> dict:
    """The engine manifest's ``layers`` entry: the layer table ``rtdeploy inspect`` prints, and the verdict."""
    verdict = report["verdict"]
    return {"verified": verdict["verified"], "ok": verdict["ok"], "verifiable": verdict["verifiable"],
            "unverifiable": verdict["unverifiable"], "hidden": report["hidden"],
            "expected": verdict["expected"], "fallbacks": verdict["fallbacks"],
            "kept_float": report["kept_float"], "detailed": report["detailed"], "schema": report["schema"], "count": report["layers"],
            "compute": report["compute"], "compute_layers": report["compute_layers"], "reformat": report["reformat"],
            "qdq": report["qdq"], "io": report["io"], "by_precision": report["by_precision"], "by_device": report["by_device"],
            "list": report["list"]}
