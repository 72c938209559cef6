"""ONNX -> serialized TensorRT plan, through the API every supported release shares.

The calls common to 8.6, 10.x and 11.x: ``Builder``, ``create_network(flags)``, ``OnnxParser``,
``create_builder_config``, ``set_memory_pool_limit``, ``create_optimization_profile``,
``build_serialized_network``. Where releases differ, :class:`~rtdeploy.trt.features.Features`
(read off the API) decides; every function takes the ``tensorrt`` module as its first argument, so
the same code runs against any release (and against specced stand-ins in the conformance tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtdeploy.errors import EngineError, MissingDependency
from rtdeploy.trt.features import Features, PrecisionPlan
from rtdeploy.trt.graph_facts import GraphFacts
from rtdeploy.trt.loader import trt_version
from rtdeploy.trt.options import BatchProfile
from rtdeploy.trt.progress import attach_progress_monitor, close_bars

log = logging.getLogger(__name__)

MAX_LISTED = 5


@dataclass
class BuildRequest:
    """Everything :func:`build_plan` needs, resolved and checked.

    Attributes:
        onnx: the ONNX file to parse.
        facts: its :class:`GraphFacts`.
        plan: the precision plan for this release.
        profile: the batch profile.
        workspace_bytes: workspace pool limit (None: TensorRT's default).
        timing_cache: previous timing cache bytes (``b""`` for a new cache; None: no cache).
        optimization_level: builder optimization level (None: default).
        dla_core: DLA core index, or None for the GPU.
        gpu_fallback: allow GPU fallback for layers DLA cannot run.
        version_compatible: set BuilderFlag.VERSION_COMPATIBLE.
        hardware_compatibility: ``ampere+``, ``same-cc`` or None.
        calibrator: an implicit INT8 calibrator (``plan.calibrator`` only).
        keep_fp32: ONNX node names the precision stage kept in float (the FP16 overflow guard,
            ``quantize --keep-fp``, sensitivity fallbacks, unquantized layers of a Q/DQ graph); pinned to
            FP32 with ``OBEY_PRECISION_CONSTRAINTS`` where the network is weakly typed.
        tf32: leave ``BuilderFlag.TF32`` set (TensorRT's default); False clears it.
        progress: show the build's phases as bars on stderr (TensorRT 10 and later).
    """

    onnx: Path
    facts: GraphFacts
    plan: PrecisionPlan
    profile: BatchProfile
    workspace_bytes: int | None = None
    timing_cache: bytes | None = None
    optimization_level: int | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    version_compatible: bool = False
    hardware_compatibility: str | None = None
    calibrator: Any = None
    keep_fp32: tuple[str, ...] = ()
    progress: bool = False
    tf32: bool = False


@dataclass
class BuildOutput:
    """A built plan and what the build learned on the way.

    Attributes:
        plan: the serialized engine.
        timing_cache: the updated timing cache bytes (None when no cache was asked for).
        dla_placement: ``{"dla": n, "gpu": m, "gpu_layers": [...]}`` on DLA builds, else None.
        builder_flags: the BuilderFlag names set, network_flags: the creation flags used.
        precision_constraints: on weakly typed builds that pin layers to FP32:
            ``{"flag": "OBEY_PRECISION_CONSTRAINTS", "layers": [...], "missing": [...]}``; else None.
        warnings: TensorRT's warnings during the build.
    """

    plan: bytes
    timing_cache: bytes | None
    dla_placement: dict | None
    builder_flags: list[str]
    network_flags: list[str]
    warnings: list[str] = field(default_factory=list)
    precision_constraints: dict | None = None


def make_logger(trt):
    """A ``trt.ILogger`` that forwards to Python logging and keeps errors and warnings for messages."""

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity, msg):
            sev = trt.ILogger.Severity
            if severity in (sev.INTERNAL_ERROR, sev.ERROR):
                self.errors.append(str(msg))
                log.debug("TensorRT error: %s", msg)
            elif severity == sev.WARNING:
                self.warnings.append(str(msg))
                log.info("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    return _Logger()


def create_builder(trt, logger):
    """``trt.Builder(logger)``, with a clear error where there is no GPU or driver.

    Raises:
        MissingDependency: TensorRT could not create a builder (no usable GPU or driver).
    """
    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as e:
        builder, reason = None, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    else:
        reason = "it returned nothing"
    if builder is None:
        detail = getattr(logger, "errors", [])[-1:] or [reason]
        raise MissingDependency(f"TensorRT {trt_version(trt)} could not create a builder: no usable NVIDIA GPU or driver "
                                f"({detail[0][:160]}); run on a machine with an NVIDIA GPU and driver — `rtdeploy doctor` shows what is missing")
    return builder


def build_plan(trt, request: BuildRequest, *, logger=None, builder=None) -> BuildOutput:
    """Parse ``request.onnx`` and build a serialized plan.

    Args:
        trt: the ``tensorrt`` module.
        request: what to build.
        logger: a ``trt.ILogger`` (default: :func:`make_logger`).
        builder: a ``trt.Builder`` already made with ``logger`` (default: a new one).

    Raises:
        MissingDependency: no builder could be created (no GPU or driver).
        EngineError: a parser error (nodes named), an option this release or device lacks, or a
            failed build (TensorRT's last error quoted).
    """
    features = Features.detect(trt)
    logger = logger if logger is not None else make_logger(trt)
    builder = builder if builder is not None else create_builder(trt, logger)
    network_flags = _network_flags(trt, request.plan)
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    _parse(trt, parser, request, features)
    config = builder.create_builder_config()
    builder_flags = _configure(trt, features, builder, config, request)
    constraints = _pin_fp32_layers(trt, features, network, config, request, builder_flags)
    _add_profiles(builder, config, features, request)
    placement = _place_on_dla(trt, builder, network, config, request) if request.dla_core is not None else None
    cache = _attach_timing_cache(config, request.timing_cache)
    monitor = attach_progress_monitor(trt, features, config) if request.progress else None
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        close_bars(monitor)
    if serialized is None:
        raise EngineError(_build_failure(trt, logger, request))
    timing = bytes(cache.serialize()) if cache is not None else None
    return BuildOutput(plan=bytes(serialized), timing_cache=timing, dla_placement=placement, builder_flags=builder_flags,
                       network_flags=list(request.plan.network_flags), warnings=list(getattr(logger, "warnings", [])),
                       precision_constraints=constraints)


def _network_flags(trt, plan: PrecisionPlan) -> int:
    value = 0
    for name in plan.network_flags:
        value |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    return value


def _parse(trt, parser, request: BuildRequest, features: Features) -> None:
    if parser.parse_from_file(str(request.onnx)):
        return
    errors = [_describe_parser_error(parser.get_error(i), request.facts, features) for i in range(parser.num_errors)]
    more = f" (and {len(errors) - MAX_LISTED} more)" if len(errors) > MAX_LISTED else ""
    listed = "; ".join(errors[:MAX_LISTED]) or "no error reported"
    raise EngineError(f"TensorRT {trt_version(trt)} cannot parse {request.onnx.name}: {listed}{more}; "
                      "re-export with the default --opset 17, or check the model's operators against TensorRT's ONNX support")


def _describe_parser_error(err, facts: GraphFacts, features: Features) -> str:
    desc = str(err.desc()).strip().splitlines()[0] if str(err.desc()).strip() else "unknown error"
    name = err.node_name() if features.parser_error_nodes else ""
    index = err.node()
    if not name and 0 <= index < len(facts.node_names):
        name = facts.node_names[index]
    op = err.node_operator() if features.parser_error_nodes else ""
    if not op and 0 <= index < len(facts.node_ops):  # 8.6 reports the node by index only
        op = facts.node_ops[index]
    where = f"node {name}" + (f" ({op})" if op else "") if name else "the graph"
    return f"{where}: {desc}"


def _configure(trt, features: Features, builder, config, request: BuildRequest) -> list[str]:
    flags = list(request.plan.builder_flags)
    if request.version_compatible:
        flags.append("VERSION_COMPATIBLE")
    if request.dla_core is not None and request.gpu_fallback:
        flags.append("GPU_FALLBACK")
    for name in flags:
        if name not in features.builder_flags:
            raise EngineError(f"TensorRT {features.version} has no BuilderFlag.{name}; drop the option that needs it")
        config.set_flag(getattr(trt.BuilderFlag, name))
    if features.tf32_flag and not request.tf32:
        # TF32 is on by default (NvInfer.h BuilderFlag::kTF32, "Enabled by default"): FP32 layers would run TF32
        # tensor-core kernels (20 of 21 convolutions of NVIDIA's A100 FP32 ResNet-18 engine). Polygraphy clears it too.
        config.clear_flag(trt.BuilderFlag.TF32)
    if request.plan.precision != "fp32" and features.fast_fp16_query and not builder.platform_has_fast_fp16:
        log.warning("this GPU has no fast FP16; %s layers may run slower than expected", request.plan.precision.upper())
    if request.workspace_bytes is not None:
        if features.memory_pool_limit:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_bytes)
        else:
            config.max_workspace_size = request.workspace_bytes
    if features.detailed_profiling:
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if request.optimization_level is not None:
        if not features.optimization_levels:
            raise EngineError(f"TensorRT {features.version} has no builder optimization levels; drop --builder-optimization-level")
        config.builder_optimization_level = request.optimization_level
    if request.hardware_compatibility is not None:
        config.hardware_compatibility_level = _hardware_level(trt, features, request.hardware_compatibility)
    if request.plan.calibrator:
        config.int8_calibrator = request.calibrator
    return flags


def _pin_fp32_layers(trt, features: Features, network, config, request: BuildRequest, builder_flags: list[str]) -> dict | None:
    """Weak typing (8.x; DLA builds on 10.x) treats the graph's types as hints: TensorRT may run every
    layer the precision stage kept in float (the FP16 guard, ``--keep-fp``, sensitivity fallbacks, the
    unquantized layers of a Q/DQ graph) in FP16 anyway, unless each is given an FP32 precision and
    ``OBEY_PRECISION_CONSTRAINTS`` is set (NvInfer.h, ``ILayer::setPrecision``; trtexec
    ``--precisionConstraints=obey --layerPrecisions=...``). Strongly typed networks obey the graph's types.
    What was built is checked after the build (a kept layer that runs below FP32 fails it)."""
    if request.plan.strongly_typed or not request.keep_fp32 or request.plan.precision == "fp32":
        return None
    if "OBEY_PRECISION_CONSTRAINTS" not in features.builder_flags:
        return None
    wanted = set(request.keep_fp32)
    pinned = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name in wanted:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned.append(layer.name)
    missing = sorted(wanted - set(pinned))
    if missing:
        log.warning("%d node(s) kept in float by the precision stage have no layer of that name in TensorRT's network: %s",
                    len(missing), ", ".join(missing[:MAX_LISTED]))
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    builder_flags.append("OBEY_PRECISION_CONSTRAINTS")
    return {"flag": "OBEY_PRECISION_CONSTRAINTS", "layers": pinned, "missing": missing}


def _hardware_level(trt, features: Features, value: str):
    if not features.hardware_compatibility:
        raise EngineError(f"TensorRT {features.version} has no hardware compatibility levels (TensorRT 8.6 added them); "
                          "build without --hardware-compatibility")
    levels = trt.HardwareCompatibilityLevel
    if value == "ampere+":
        return levels.AMPERE_PLUS
    if not features.same_cc_compatibility:
        raise EngineError(f"TensorRT {features.version} has no same-compute-capability hardware compatibility (later 10.x releases have it); "
                          "use --hardware-compatibility ampere+ or build without it")
    return levels.SAME_COMPUTE_CAPABILITY


def _add_profiles(builder, config, features: Features, request: BuildRequest) -> None:
    name, sample = request.facts.input_name, request.facts.sample_shape
    profile = builder.create_optimization_profile()
    profile.set_shape(name, *request.profile.shapes(sample))
    config.add_optimization_profile(profile)
    if request.plan.calibrator and features.calibration_profile:
        # Calibration runs at one static shape: the profile's OPT batch.
        opt = request.profile.opt
        calib = builder.create_optimization_profile()
        calib.set_shape(name, *BatchProfile(opt, opt, opt).shapes(sample))
        config.set_calibration_profile(calib)


def _place_on_dla(trt, builder, network, config, request: BuildRequest) -> dict:
    cores = int(builder.num_DLA_cores)
    if cores == 0:
        raise EngineError(f"--dla-core {request.dla_core} asked, but this device has no DLA (num_DLA_cores = 0); "
                          "drop --dla-core (DLA exists on Jetson AGX Xavier / Orin)")
    if request.dla_core >= cores:
        raise EngineError(f"--dla-core {request.dla_core} asked, but this device has {cores} DLA core(s): use 0..{cores - 1}")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = request.dla_core
    gpu_layers = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not config.can_run_on_DLA(layer):
            gpu_layers.append(layer.name)
    if gpu_layers and not request.gpu_fallback:
        shown = ", ".join(gpu_layers[:MAX_LISTED]) + (f" and {len(gpu_layers) - MAX_LISTED} more" if len(gpu_layers) > MAX_LISTED else "")
        raise EngineError(f"{len(gpu_layers)} layer(s) cannot run on DLA ({shown}); add --gpu-fallback to run them on the GPU")
    return {"dla": network.num_layers - len(gpu_layers), "gpu": len(gpu_layers), "gpu_layers": gpu_layers}


def _attach_timing_cache(config, data: bytes | None):
    if data is None:
        return None
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        log.warning("the timing cache does not fit this GPU or TensorRT; starting a new one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache


def _build_failure(trt, logger, request: BuildRequest) -> str:
    errors = getattr(logger, "errors", [])
    last = errors[-1].strip().splitlines()[0][:240] if errors else "no error was logged"
    hint = "give a larger --workspace or free GPU memory" if any(w in last.lower() for w in ("memory", "workspace", "alloc")) \
        else "run with -vv for TensorRT's log"
    return f"TensorRT {trt_version(trt)} could not build an engine from {request.onnx.name}: {last}; {hint}"
