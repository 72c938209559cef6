"""What the installed TensorRT can do, found by looking at its API (not at its version string),
and the precision plan that follows for a given graph.

The releases differ (see docs/tensorrt.md):

- 8.6: ONNX needs ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``; precision comes from builder
  flags (``FP16``, ``INT8``), also for Q/DQ models; implicit calibration exists.
- 10.x: ``STRONGLY_TYPED`` networks take precision from the graph's own types (FP16 graphs, Q/DQ);
  the weak-typing flags still exist and are used only when strong typing is unavailable.
- 11.x: strongly typed only: no precision flags, no calibrators.

8.5 (JetPack 5.1, the last JetPack for Jetson Xavier) has the 8.6 path without what 8.6 added
(NVIDIA/TensorRT v8.6.0 ``python/src/infer/pyCore.cpp``): hardware and version compatibility
(``HardwareCompatibilityLevel``, ``BuilderFlag.VERSION_COMPATIBLE``, ``Runtime.engine_host_code_allowed``)
and builder optimization levels. Every such member is looked up with ``hasattr`` here (:class:`Features`),
never probed elsewhere: the builder, the runner, the plan loader and the progress bars read these fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rtdeploy.errors import EngineError, PrecisionError
from rtdeploy.trt.graph_facts import GraphFacts
from rtdeploy.trt.loader import trt_version


@dataclass(frozen=True)
class Features:
    """The capabilities of one TensorRT release, each read off its API."""

    version: str
    explicit_batch_flag: bool
    strongly_typed: bool
    fp16_flag: bool
    int8_flag: bool
    calibrators: bool
    memory_pool_limit: bool
    max_workspace_size: bool
    detailed_profiling: bool
    same_cc_compatibility: bool
    fast_fp16_query: bool
    calibration_profile: bool
    engine_host_code_allowed: bool
    hardware_compatibility: bool = False
    version_compatible: bool = False
    optimization_levels: bool = False
    tf32_flag: bool = False
    builder_flags: frozenset[str] = frozenset()
    parser_error_nodes: bool = False
    progress_monitor: bool = False
    plugins_init: bool = False
    device_memory_size_v2: bool = False
    allocation_strategy: bool = False
    set_device_memory: bool = False

    @classmethod
    def detect(cls, trt) -> "Features":
        """Read the features of the ``tensorrt`` module ``trt``."""
        flags = trt.BuilderFlag
        net_flags = trt.NetworkDefinitionCreationFlag
        config = trt.IBuilderConfig
        levels = getattr(trt, "HardwareCompatibilityLevel", None)  # 8.6 and later
        return cls(
            version=trt_version(trt),
            explicit_batch_flag=hasattr(net_flags, "EXPLICIT_BATCH"),
            strongly_typed=hasattr(net_flags, "STRONGLY_TYPED"),
            fp16_flag=hasattr(flags, "FP16"),
            int8_flag=hasattr(flags, "INT8"),
            calibrators=hasattr(trt, "IInt8EntropyCalibrator2") and hasattr(config, "int8_calibrator"),
            memory_pool_limit=hasattr(config, "set_memory_pool_limit"),
            max_workspace_size=hasattr(config, "max_workspace_size"),
            detailed_profiling=hasattr(trt, "ProfilingVerbosity") and hasattr(trt.ProfilingVerbosity, "DETAILED"),
            same_cc_compatibility=hasattr(levels, "SAME_COMPUTE_CAPABILITY"),
            fast_fp16_query=hasattr(trt.Builder, "platform_has_fast_fp16"),
            calibration_profile=hasattr(config, "set_calibration_profile"),
            engine_host_code_allowed=hasattr(trt.Runtime, "engine_host_code_allowed"),
            hardware_compatibility=hasattr(levels, "AMPERE_PLUS") and hasattr(config, "hardware_compatibility_level"),
            version_compatible=hasattr(flags, "VERSION_COMPATIBLE"),
            optimization_levels=hasattr(config, "builder_optimization_level"),
            tf32_flag=hasattr(flags, "TF32"),
            builder_flags=frozenset(getattr(flags, "__members__", None) or (n for n in dir(flags) if n.isupper())),
            parser_error_nodes=hasattr(getattr(trt, "ParserError", None), "node_name"),  # 10.x: the node's name and operator
            progress_monitor=hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor"),  # 10.x
            plugins_init=hasattr(trt, "init_libnvinfer_plugins"),
            device_memory_size_v2=hasattr(getattr(trt, "ICudaEngine", None), "device_memory_size_v2"),  # 10.x
            allocation_strategy=hasattr(trt, "ExecutionContextAllocationStrategy"),  # 10.x
            set_device_memory=hasattr(getattr(trt, "IExecutionContext", None), "set_device_memory"),  # 10.x
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["builder_flags"] = sorted(self.builder_flags)
        return d

    def refuse_missing(self, *, version_compatible: bool = False, hardware_compatibility: str | None = None,
                       optimization_level: int | None = None) -> None:
        """Refuse, before any work, the build options this release has no API for.

        Raises:
            EngineError: one line naming the option and the release that lacks it.
        """
        missing = [flag for flag, asked, here in (
            ("--version-compatible", version_compatible, self.version_compatible),
            ("--hardware-compatibility", hardware_compatibility is not None, self.hardware_compatibility),
            ("--builder-optimization-level", optimization_level is not None, self.optimization_levels)) if asked and not here]
        if missing:
            raise EngineError(f"TensorRT {self.version} has no {', '.join(missing)} (TensorRT 8.6 added them); "
                              f"drop {' and '.join(missing)}, or build with TensorRT 8.6 or later")


@dataclass(frozen=True)
class PrecisionPlan:
    """How to get the asked precision out of this release.

    Attributes:
        precision: what was asked: ``fp32``, ``fp16`` or ``int8``.
        network_flags: ``NetworkDefinitionCreationFlag`` member names to create the network with.
        builder_flags: ``BuilderFlag`` member names to set on the config.
        calibrator: True when an implicit INT8 calibrator must be attached.
        method: one line for the manifest: how the precision is obtained.
    """

    precision: str
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    calibrator: bool
    method: str

    @property
    def strongly_typed(self) -> bool:
        return "STRONGLY_TYPED" in self.network_flags


def plan_precision(features: Features, precision: str, graph: GraphFacts, *, implicit_calibration: bool = False,
                   dla: bool = False) -> PrecisionPlan:
    """Decide network flags, builder flags and calibration for ``precision`` on ``graph``.

    ``graph`` must already carry the precision (an FP16 graph for fp16, Q/DQ nodes for int8),
    except with ``implicit_calibration``, which takes the FP32 graph. With ``dla``, weak typing
    (precision flags) is preferred where the release still has it: DLA builds predate strongly
    typed networks and TensorRT documents them on the flag path.

    Raises:
        PrecisionError: the graph does not carry the precision, or the release cannot do it
            (e.g. implicit calibration on 11.x; FP16 without an FP16 graph or flag).
    """
    base = ("EXPLICIT_BATCH",) if features.explicit_batch_flag and not features.strongly_typed else ()
    typed = base + ("STRONGLY_TYPED",) if features.strongly_typed else base
    if implicit_calibration:
        return _implicit_int8(features, graph, base)
    if graph.precision != precision:
        raise PrecisionError(f"the ONNX carries {graph.precision.upper()}, not {precision.upper()}; build it with --{graph.precision}, "
                             f"or give the FP32 ONNX so build-engine makes the {precision.upper()} model")
    if precision == "fp32":
        return PrecisionPlan("fp32", typed, (), False, "fp32 graph" + (", strongly typed network" if features.strongly_typed else ""))
    if features.strongly_typed and not (dla and features.fp16_flag):
        return PrecisionPlan(precision, typed, (), False, f"{'fp16 graph' if precision == 'fp16' else 'q/dq graph'}, strongly typed network")
    if precision == "fp16":
        if not features.fp16_flag:
            raise PrecisionError(f"TensorRT {features.version} has neither strongly typed networks nor BuilderFlag.FP16; FP16 cannot be built")
        return PrecisionPlan("fp16", base, ("FP16",), False, "fp16 graph + BuilderFlag.FP16 (weakly typed)")
    if not features.int8_flag:
        raise PrecisionError(f"TensorRT {features.version} has neither strongly typed networks nor BuilderFlag.INT8; INT8 cannot be built")
    extra = ("FP16",) if features.fp16_flag else ()
    return PrecisionPlan("int8", base, ("INT8", *extra), False, "q/dq graph + BuilderFlag.INT8 (+FP16; layers kept in float pinned to FP32)")


def _implicit_int8(features: Features, graph: GraphFacts, base: tuple[str, ...]) -> PrecisionPlan:
    if not (features.calibrators and features.int8_flag):
        raise PrecisionError(f"TensorRT {features.version} has no implicit INT8 calibration (removed in TensorRT 11); "
                             "drop --implicit-calibration to use the Q/DQ model rtdeploy calibrates (the default)")
    if graph.precision != "fp32":
        raise PrecisionError(f"--implicit-calibration needs the FP32 ONNX, but this one carries {graph.precision.upper()}; "
                             "give the FP32 ONNX, or drop --implicit-calibration to build the Q/DQ model as it is")
    extra = ("FP16",) if features.fp16_flag else ()
    return PrecisionPlan("int8", base, ("INT8", *extra), True, "implicit calibration (IInt8EntropyCalibrator2), weakly typed")
