"""Stand-ins specced from a release's REAL classes, for API-conformance tests (no GPU needed).

``World(trt)`` builds a fake ``tensorrt`` module around the real one: enums, flags, ``Dims``,
``ILogger``, ``IInt8EntropyCalibrator2``, ``nptype`` ... are the real objects; only the factories
that need a GPU (``Builder``, ``Runtime``, ``OnnxParser``) return ``create_autospec`` instances of
the real classes (``spec_set``: reading or writing a member the release lacks raises). Every call
made on them is then checked against the real method's pybind11 signature (its docstring):
argument count, keyword names, and argument types where they are TensorRT classes or enums.

``FakeCudart`` does the same for the CUDA runtime bindings: each function is an autospec of the
real ``cuda.bindings.runtime`` function, backed by host memory, so the runner's data path really
moves bytes. It proves API conformance, not that an engine builds or runs.

The stand-ins also enforce TensorRT's documented runtime rules (sources in
../shared/reference/trt-engine-graphs/README.md, "Documented runtime rules"):

- (a) a version-compatible plan deserializes only with ``Runtime.engine_host_code_allowed = True``
  (NvInferRuntime.h: default False; trtexec sampleEngines.cpp:114-118 sets it for such plans);
- (b) a CUDA graph captured on an execution context must not be replayed after ``set_input_shape``
  changed that context's shapes (NVIDIA/TensorRT #3798: "you have to re-capture the graph");
- (c) ``execute_async_v3`` may fail under capture (``fail_in_capture``); the capture is then
  invalidated and ``cudaStreamEndCapture`` returns ``cudaErrorStreamCaptureInvalidated``, as the CUDA
  runtime documents, and trtexec (sampleDevice.h endCaptureOnError) ends it, clears the error, and
  goes on without a graph;
- the inspector serves real layer JSONs (``layers_json``; tests/trt_stubs/refdata.py), in TensorRT
  11's documented form on 11.x releases;
- (d) a layer asked to stay FP32 (``weak_fp16``: the names the ONNX keeps in float) runs FP32 only where
  TensorRT must obey: a strongly typed network, or ``layer.precision = float32`` with
  ``BuilderFlag.OBEY_PRECISION_CONSTRAINTS``; under weak typing without both, TensorRT "could still choose
  a non-conforming fastest implementation that ignores the requested precision" (NvInfer.h @5302b288
  ``ILayer::setPrecision``, 676-686), and the stand-in reports it at the FP16 the flag allows;
- (f) a context created without device memory (8.x ``create_execution_context_without_device_memory``; 10.x/11.x
  ``create_execution_context(ExecutionContextAllocationStrategy.USER_MANAGED)``) may enqueue only after it was
  given 256-byte aligned memory of at least the engine's ``device_memory_size(_v2)`` (``device_memory = ptr`` on
  8.x, ``set_device_memory(ptr, size)`` on 10.x/11.x: the real bindings' ``set_device_memory`` docstring);
  ``cudaMalloc`` returns 256-byte aligned memory (CUDA C++ Programming Guide, "Device Memory Accesses");
- every ``cuda.bindings.runtime`` call is checked against the real function: argument count via
  its signature, and the number of values returned via its docstring's ``Returns`` section (a bare
  ``create_autospec`` of these Cython functions accepts any arguments).
"""

from __future__ import annotations

import ctypes
import inspect
import json
import re
import types
from unittest import mock

import numpy as np

PLAN_MAGIC = b"FAKEPLAN"
VC_MARK = b"VERSION-COMPATIBLE"  # where the fake plan records BuilderFlag.VERSION_COMPATIBLE


# -- pybind11 signatures --------------------------------------------------------------------------
def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def signatures(func, name: str) -> list[list[tuple[str, str, bool]]]:
    """The overloads in a pybind11 docstring: lists of (param, type, has_default), ``self`` dropped."""
    doc = getattr(func, "__doc__", None) or ""
    out = []
    for m in re.finditer(rf"^\s*(?:\d+\.\s+)?{re.escape(name)}\((.*)\)\s*->", doc, re.MULTILINE):
        params = []
        for p in _split_top(m.group(1)):
            if p in ("*args", "**kwargs"):
                params = None
                break
            pname, _, rest = p.partition(":")
            ptype, _, default = rest.partition("=")
            params.append((pname.strip(), ptype.strip(), bool(default.strip())))
        if params is not None:
            out.append([p for p in params if p[0] != "self"])
    return out


class SignatureChecker:
    """Checks recorded calls against the real release's signatures."""

    def __init__(self, trt):
        self.trt = trt

    def type_ok(self, value, type_name: str) -> bool:
        short = type_name.rsplit(".", 1)[-1]
        if type_name == "int":
            return isinstance(value, (int, np.integer))
        if type_name in ("typing.SupportsInt", "typing.SupportsIndex"):  # newer pybind11 annotations
            return hasattr(value, "__int__") or hasattr(value, "__index__")
        if type_name == "typing.SupportsFloat":
            return hasattr(value, "__float__")
        if type_name == "float":
            return isinstance(value, (int, float, np.floating, np.integer))
        if type_name == "bool":
            return isinstance(value, (bool, int, np.bool_))
        if type_name == "str":
            return isinstance(value, str)
        if type_name == "buffer":
            return isinstance(value, (bytes, bytearray, memoryview, np.ndarray))
        if type_name.startswith(("tensorrt.", "tensorrt_bindings.")) and hasattr(self.trt, short):
            cls = getattr(self.trt, short)
            if short.startswith("Dims") or short == "Permutation":
                return isinstance(value, (cls, tuple, list)) or isinstance(value, self.trt.Dims)
            return isinstance(value, cls)
        return True  # typing constructs, capsules, numpy: not checked

    def problems(self, cls, name: str, args: tuple, kwargs: dict) -> str | None:
        """None when ``cls.name(*args, **kwargs)`` matches an overload of the real method."""
        func = getattr(cls, name, None)
        if func is None:
            return f"{cls.__name__} has no member {name}"
        overloads = signatures(func, name)
        if not overloads:
            return None
        reasons = []
        for params in overloads:
            why = self._bind(params, args, kwargs)
            if why is None:
                return None
            reasons.append(why)
        return f"{cls.__name__}.{name}{args!r}{kwargs or ''}: " + " | ".join(reasons)

    def _bind(self, params, args, kwargs) -> str | None:
        if len(args) > len(params):
            return f"{len(args)} positional arguments, the method takes {len(params)}"
        bound = dict(zip([p[0] for p in params], args))
        for k, v in kwargs.items():
            if k not in [p[0] for p in params] or k in bound:
                return f"unexpected keyword {k}"
            bound[k] = v
        for pname, ptype, has_default in params:
            if pname not in bound:
                if not has_default:
                    return f"missing argument {pname}"
            elif not self.type_ok(bound[pname], ptype):
                return f"{pname} should be {ptype}, got {type(bound[pname]).__name__}"
        return None


# -- the fake tensorrt module ----------------------------------------------------------------------
class _Factory:
    """Stands for a real class: attribute access goes to the class; calling it returns a stand-in."""

    def __init__(self, cls, make, checker: SignatureChecker, log: list):
        self._cls, self._make, self._checker, self._log = cls, make, checker, log

    def __call__(self, *args, **kwargs):
        problem = self._checker.problems(self._cls, "__init__", args, kwargs)
        if problem:
            self._log.append(problem)
        return self._make(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cls, name)


def layer_info(layers: list[tuple[str, str, str]]) -> str:
    """Inspector JSON like TensorRT's detailed verbosity: (name, layer type, Format/Datatype)."""
    return json.dumps({"Layers": [{"Name": n, "LayerType": t,
                                   "Inputs": [{"Name": f"{n}_in", "Location": "Device", "Dimensions": [8, 3, 8, 8], "Format/Datatype": f}],
                                   "Outputs": [{"Name": f"{n}_out", "Location": "Device", "Dimensions": [8, 4, 8, 8], "Format/Datatype": f}],
                                   "TacticName": "fake"} for n, t, f in layers], "Bindings": ["input", "logits"]})


INT8_LAYERS = [("conv1 + relu", "CaskConvolution", "Thirty-two wide channel vectorized row major Int8 format"),
               ("fc", "CaskGemmConvolution", "Row major linear FP32")]
FP16_LAYERS = [("conv1 + relu", "CaskConvolution", "Channel major FP16 format where channel % 8 == 0"),
               ("fc", "CaskGemmConvolution", "Row major linear FP16 format")]
FP32_LAYERS = [("conv1 + relu", "CaskConvolution", "Row major linear FP32"), ("fc", "CaskGemmConvolution", "Row major linear FP32")]


class World:
    """A fake ``tensorrt`` module plus the specced objects it hands out, for one scenario.

    Args:
        trt: the REAL tensorrt module of the release under test.
        parse_ok, parser_errors: what ``OnnxParser.parse_from_file`` does.
        build_ok: whether ``build_serialized_network`` returns a plan (else None).
        num_dla_cores, dla_unsupported: DLA cores, and layer names ``can_run_on_DLA`` refuses.
        layers: the inspector's layers (see :func:`layer_info`).
        io_dtype: the engine's I/O data type name (``FLOAT`` or ``HALF``).
        classes: output width of the fake engine.
    """

    def __init__(self, trt, *, parse_ok=True, parser_errors=(), build_ok=True, num_dla_cores=0, dla_unsupported=(),
                 layers=FP32_LAYERS, io_dtype="FLOAT", classes=4, network_layers=("conv1", "relu", "fc"),
                 layers_json: str | None = None, fail_in_capture=False, weak_fp16: tuple[str, ...] = (), scratch_bytes: int = 3 << 20,
                 profile: tuple[int, int, int] = (1, 8, 32)):
        self.real = trt
        self.checker = SignatureChecker(trt)
        self.problems: list[str] = []
        self.registry: list[tuple[mock.Mock, type]] = []
        self.parse_ok, self.parser_errors, self.build_ok = parse_ok, list(parser_errors), build_ok
        self.num_dla_cores, self.dla_unsupported = num_dla_cores, set(dla_unsupported)
        self.layers, self.io_dtype, self.classes = layers, io_dtype, classes
        self.network_layers = network_layers
        self.layers_json, self.fail_in_capture = layers_json, fail_in_capture
        self.weak_fp16 = set(weak_fp16)
        self.scratch_bytes = scratch_bytes
        self.profile = profile
        self.contexts: list = []
        self.obeyed: set[str] = set()
        self.network_input = "input"
        self.capture_invalidated = False
        self.events: list[str] = []  # order of plugin registration and deserialization
        self.runtimes: list = []
        self.cudarts: list = []
        self.memory = None  # set by the runner scenarios: a FakeCudart-backed CudaRuntime
        self.capturing: list | None = None
        self.builder = self._builder()
        self.runtime = self._runtime()
        self.runtimes = []
        self.module = self._module()

    def spec(self, cls):
        m = mock.create_autospec(cls, instance=True, spec_set=True)
        self.registry.append((m, cls))
        return m

    def set_if(self, m, name, value):
        """Set a property only where the release has it (to mirror real objects)."""
        if hasattr(m, name):
            setattr(m, name, value)

    def _module(self):
        trt = self.real
        mod = types.ModuleType(trt.__name__)
        for name in dir(trt):
            if not name.startswith("__"):
                setattr(mod, name, getattr(trt, name))
        mod.__version__ = trt.__version__
        mod.Builder = _Factory(trt.Builder, lambda logger: self.builder, self.checker, self.problems)
        mod.Runtime = _Factory(trt.Runtime, lambda logger: self._new_runtime(), self.checker, self.problems)
        mod.init_libnvinfer_plugins = self._init_plugins
        mod.OnnxParser = _Factory(trt.OnnxParser, lambda network, logger: self.parser, self.checker, self.problems)
        return mod

    def _init_plugins(self, *args, **kwargs):
        params = (signatures(self.real.init_libnvinfer_plugins, "init_libnvinfer_plugins") or [None])[0]
        why = self.checker._bind(params, args, kwargs) if params is not None else None
        if why:
            self.problems.append(f"init_libnvinfer_plugins{args!r}: {why}")
        self.events.append("plugins")
        return True

    # -- builder side --------------------------------------------------------------------------
    def _builder(self):
        trt = self.real
        b = self.spec(trt.Builder)
        self.network = self.spec(trt.INetworkDefinition)
        self.network.num_layers = len(self.network_layers)
        self.layer_mocks = []
        for n in self.network_layers:
            layer = self.spec(trt.ILayer)
            layer.name = n
            layer.num_outputs = 1
            self.layer_mocks.append(layer)
        self.network.get_layer.side_effect = lambda i: self.layer_mocks[i]
        self.parser = self.spec(trt.OnnxParser)
        self.parser.parse_from_file.return_value = self.parse_ok
        self.parser.num_errors = len(self.parser_errors)
        self.parser.get_error.side_effect = lambda i: self._parser_error(*self.parser_errors[i])
        self.config = self.spec(trt.IBuilderConfig)
        self.timing_cache = self.spec(trt.ITimingCache)
        self.timing_cache.serialize.return_value = b"TIMING-CACHE"
        self.config.create_timing_cache.return_value = self.timing_cache
        self.config.set_timing_cache.return_value = True
        self.config.get_timing_cache.return_value = self.timing_cache
        self.config.can_run_on_DLA.side_effect = lambda layer: layer.name not in self.dla_unsupported
        self.profiles = []
        b.create_network.return_value = self.network
        b.create_builder_config.return_value = self.config
        b.create_optimization_profile.side_effect = self._profile
        b.build_serialized_network.side_effect = self._serialize
        b.num_DLA_cores = self.num_dla_cores
        self.set_if(b, "platform_has_fast_fp16", True)
        return b

    def _serialize(self, network, config):
        calibrator = getattr(self.config, "int8_calibrator", None) if hasattr(self.real.IBuilderConfig, "int8_calibrator") else None
        if isinstance(calibrator, getattr(self.real, "IInt8Calibrator", ())):
            calibrator.get_batch([self.network_input])  # TensorRT pulls calibration batches during the build
        self._report_progress()
        if not self.build_ok:
            return None
        flags = {c.args[0] for c in self.config.set_flag.call_args_list}
        self.obeyed = self._obeyed(flags)
        vc = hasattr(self.real.BuilderFlag, "VERSION_COMPATIBLE") and self.real.BuilderFlag.VERSION_COMPATIBLE in flags
        return PLAN_MAGIC + (VC_MARK if vc else b"\0" * len(VC_MARK)) + b"\0" * 48

    def _obeyed(self, flags) -> set[str]:
        """Rule (d): the layers TensorRT must build at the precision asked of them."""
        net = self.builder.create_network.call_args.args[0] if self.builder.create_network.call_args else 0
        typed = self.real.NetworkDefinitionCreationFlag
        if hasattr(typed, "STRONGLY_TYPED") and net & (1 << int(typed.STRONGLY_TYPED)):
            return set(self.weak_fp16)
        obey = getattr(self.real.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS", None)
        if obey is None or obey not in flags:
            return set()
        return {layer.name for layer in self.layer_mocks if layer.name in self.weak_fp16
                and isinstance(getattr(layer, "precision", None), self.real.DataType) and layer.precision == self.real.float32}

    def _layers_built(self) -> list[tuple[str, str, str]]:
        fp32 = "Row major linear FP32"
        return [(n, t, fp32 if n in self.obeyed else f) for n, t, f in self.layers]

    def _report_progress(self) -> None:
        """TensorRT 10+ reports the build's phases to the config's ``progress_monitor``: ``phase_start(name,
        parent, steps)``, ``step_complete(name, step)`` for steps 0..steps-1 (False cancels the build) and
        ``phase_finish(name)``, phases nested by their parent (TensorRT API, ``IProgressMonitor``)."""
        monitor = getattr(self.config, "progress_monitor", None) if hasattr(self.real.IBuilderConfig, "progress_monitor") else None
        if not isinstance(monitor, getattr(self.real, "IProgressMonitor", ())):
            return
        monitor.phase_start("Building engine", None, 1)
        monitor.phase_start("Tactic selection", "Building engine", 3)
        self.progress_answers = [monitor.step_complete("Tactic selection", step) for step in range(3)]
        monitor.phase_finish("Tactic selection")
        self.progress_answers.append(monitor.step_complete("Building engine", 0))
        monitor.phase_finish("Building engine")

    def _profile(self):
        p = self.spec(self.real.IOptimizationProfile)
        self.profiles.append(p)
        return p

    def _parser_error(self, desc, node_index, node_name, op):
        e = self.spec(self.real.ParserError)
        e.desc.return_value = desc
        e.node.return_value = node_index
        if hasattr(e, "node_name"):
            e.node_name.return_value = node_name
        if hasattr(e, "node_operator"):
            e.node_operator.return_value = op
        return e

    # -- runtime side --------------------------------------------------------------------------
    def _runtime(self):
        r = self.spec(self.real.Runtime)
        self.set_if(r, "engine_host_code_allowed", False)  # TensorRT's default (NvInferRuntime.h)

        def deserialize(data):
            data = bytes(data)
            self.events.append("deserialize")
            if not data.startswith(PLAN_MAGIC):
                return None
            if data[len(PLAN_MAGIC):len(PLAN_MAGIC) + len(VC_MARK)] == VC_MARK and getattr(r, "engine_host_code_allowed", None) is not True:
                # Rule (a): a version-compatible plan embeds a lean runtime; TensorRT refuses it without host code allowed.
                return None
            return self._engine()

        r.deserialize_cuda_engine.side_effect = deserialize
        return r

    def _new_runtime(self):
        self.runtime = self._runtime()
        self.runtimes.append(self.runtime)
        return self.runtime

    def _engine(self):
        trt = self.real
        e = self.spec(trt.ICudaEngine)
        inspector = self.spec(trt.EngineInspector)
        inspector.get_engine_information.return_value = self.layers_json if self.layers_json is not None else layer_info(self._layers_built())
        e.create_engine_inspector.return_value = inspector
        e.create_execution_context.side_effect = self._create_context
        if hasattr(e, "create_execution_context_without_device_memory"):
            e.create_execution_context_without_device_memory.side_effect = lambda: self._context(user_managed=True)
        self.set_if(e, "device_memory_size", self.scratch_bytes)
        self.set_if(e, "device_memory_size_v2", self.scratch_bytes)
        e.num_io_tensors = 2
        names = ["input", "logits"]
        e.get_tensor_name.side_effect = lambda i: names[i]
        e.get_tensor_mode.side_effect = lambda n: trt.TensorIOMode.INPUT if n == "input" else trt.TensorIOMode.OUTPUT
        e.get_tensor_dtype.side_effect = lambda n: getattr(trt.DataType, self.io_dtype)
        e.get_tensor_profile_shape.side_effect = lambda n, i: [trt.Dims([b, 3, 8, 8]) for b in self.profile]
        self.engine = e
        return e

    def _create_context(self, strategy=None, **kwargs):
        strategy = kwargs.get("strategy", strategy)
        managed = getattr(self.real, "ExecutionContextAllocationStrategy", None)
        return self._context(user_managed=managed is not None and strategy == managed.USER_MANAGED)

    def _context(self, user_managed: bool = False):
        trt = self.real
        c = self.spec(trt.IExecutionContext)
        shapes, addresses = {}, {}
        state = {"generation": 0, "user_managed": user_managed, "memory": None}
        self.contexts.append(state)

        def set_input_shape(name, shape):
            if shapes.get(name) != tuple(shape):
                state["generation"] += 1  # rule (b): graphs captured before this are stale
            shapes[name] = tuple(shape)
            return self.profile[0] <= shape[0] <= self.profile[2]  # NvInferRuntime.h setInputShape: false outside the profile

        def get_tensor_shape(name):
            if name == "input":
                return trt.Dims(list(shapes.get("input", (-1, 3, 8, 8))))
            return trt.Dims([shapes.get("input", (-1,))[0], self.classes])

        def set_tensor_address(name, ptr):
            addresses[name] = ptr
            return True

        def set_device_memory(ptr, size):
            state["memory"] = (int(ptr), int(size))

        def execute_async_v3(stream_handle):
            if state["user_managed"]:  # rule (f)
                memory = state["memory"]
                if memory is None and isinstance(getattr(c, "device_memory", None), int):  # 8.x: the property was set
                    memory = (c.device_memory, self.scratch_bytes)
                assert memory is not None, "enqueue on a context created without device memory, before any was given to it"
                assert memory[0] % 256 == 0 and memory[1] >= self.scratch_bytes, (
                    f"device memory {memory} is not 256-byte aligned or smaller than the engine's {self.scratch_bytes} bytes")
            op = (self._compute, dict(shapes), dict(addresses), state, state["generation"])
            if self.capturing is not None:
                if self.fail_in_capture:  # rule (c): enqueue refused under capture; the capture is invalidated
                    self.capture_invalidated = True
                    return False
                self.capturing.append(op)
            else:
                op[0](op[1], op[2])
            return True

        c.set_input_shape.side_effect = set_input_shape
        c.get_tensor_shape.side_effect = get_tensor_shape
        c.set_tensor_address.side_effect = set_tensor_address
        c.execute_async_v3.side_effect = execute_async_v3
        if hasattr(c, "set_device_memory"):
            c.set_device_memory.side_effect = set_device_memory
        self.context = c
        return c

    def _compute(self, shapes, addresses):
        """The fake network: logits[b, k] = (k + 1) * mean(input[b])."""
        dtype = np.float16 if self.io_dtype == "HALF" else np.float32
        shape = shapes["input"]
        n = int(np.prod(shape))
        x = np.ctypeslib.as_array((ctypes.c_byte * (n * np.dtype(dtype).itemsize)).from_address(addresses["input"])).view(dtype).reshape(shape)
        y = (x.reshape(shape[0], -1).astype(np.float32).mean(axis=1)[:, None] * np.arange(1, self.classes + 1)).astype(dtype)
        ctypes.memmove(addresses["logits"], y.ctypes.data, y.nbytes)

    # -- checks --------------------------------------------------------------------------------
    def call_problems(self) -> list[str]:
        """Every recorded call that matches no overload of the real method (TensorRT and CUDA)."""
        found = list(self.problems)
        for cudart in self.cudarts:
            found += cudart.problems
        for m, cls in self.registry:
            for name, args, kwargs in m.method_calls:
                if "." in name:
                    continue
                problem = self.checker.problems(cls, name, args, kwargs)
                if problem:
                    found.append(problem)
        return found


# -- the fake CUDA runtime -----------------------------------------------------------------------
class FakeCudart(types.ModuleType):
    """``cuda.bindings.runtime`` with every function used replaced by an autospec of the real one,
    backed by host memory; graphs record the TensorRT enqueues made during capture."""

    FUNCTIONS = ("cudaGetDeviceCount", "cudaSetDevice", "cudaGetDeviceProperties", "cudaMemGetInfo", "cudaMalloc", "cudaFree",
                 "cudaMallocHost", "cudaFreeHost", "cudaMemcpyAsync", "cudaStreamCreate", "cudaStreamSynchronize",
                 "cudaStreamDestroy", "cudaEventCreate", "cudaEventRecord", "cudaEventSynchronize", "cudaEventElapsedTime",
                 "cudaEventDestroy", "cudaStreamBeginCapture", "cudaStreamEndCapture", "cudaGraphInstantiateWithFlags", "cudaGraphLaunch",
                 "cudaGraphDestroy", "cudaGraphExecDestroy", "cudaGetLastError", "cudaDriverGetVersion", "cudaRuntimeGetVersion")

    def __init__(self, rt, world: World | None = None, *, total=8 << 30, free=6 << 30, integrated=False, cc=(8, 6),
                 driver=12090, device_error: str | None = None):
        super().__init__(rt.__name__)
        self.problems: list[str] = []
        self.last_error = rt.cudaError_t.cudaSuccess
        self.driver, self.device_error = driver, device_error
        self.launched = 0
        self.streams: set[int] = set()
        if world is not None:
            world.cudarts.append(self)
        self.rt, self.world = rt, world
        self.cudaError_t, self.cudaMemcpyKind, self.cudaStreamCaptureMode = rt.cudaError_t, rt.cudaMemcpyKind, rt.cudaStreamCaptureMode
        self.cudaGetErrorString = rt.cudaGetErrorString
        self.total, self.free, self.integrated, self.cc = total, free, integrated, cc
        self.buffers: dict[int, np.ndarray] = {}
        self.graphs: dict[int, list] = {}
        self._next = 100
        self.ok = rt.cudaError_t.cudaSuccess
        for name in self.FUNCTIONS:
            setattr(self, name, mock.create_autospec(getattr(rt, name), side_effect=self._checked(name, getattr(self, "_" + name))))

    def _checked(self, name, impl):
        real = getattr(self.rt, name)

        def call(*args, **kwargs):
            why = cudart_call_problem(real, args, kwargs)
            result = impl(*args, **kwargs)
            why = why or cudart_return_problem(real, result)
            if why:
                self.problems.append(f"{name}: {why}")
            return result

        return call

    def _handle(self, kind):
        self._next += 1
        return getattr(self.rt, kind)(self._next)

    def _cudaGetDeviceCount(self):
        if self.device_error:  # the real bindings return (error, None) on failure
            return getattr(self.rt.cudaError_t, self.device_error), None
        return self.ok, 1

    def _cudaSetDevice(self, device):
        return (self.ok,)

    def _cudaGetDeviceProperties(self, device):
        prop = self.rt.cudaDeviceProp()
        prop.name = b"Fake GPU".ljust(256, b"\0")
        prop.major, prop.minor = self.cc
        prop.integrated = int(self.integrated)
        return self.ok, prop

    def _cudaMemGetInfo(self):
        return self.ok, self.free, self.total

    def _alloc(self, size):
        # cudaMalloc/cudaMallocHost memory is aligned to at least 256 bytes (CUDA C++ Programming Guide, "Device Memory Accesses")
        raw = np.zeros(max(int(size), 1) + 256, dtype=np.uint8)
        offset = -raw.ctypes.data % 256
        buf = raw[offset:offset + max(int(size), 1)]
        self.buffers[buf.ctypes.data] = buf
        return self.ok, buf.ctypes.data

    def _cudaMalloc(self, size):
        return self._alloc(size)

    def _cudaMallocHost(self, size):
        return self._alloc(size)

    def _release(self, ptr):
        assert int(ptr) in self.buffers, f"freeing unknown pointer {ptr}"
        del self.buffers[int(ptr)]
        return (self.ok,)

    def _cudaFree(self, ptr):
        return self._release(ptr)

    def _cudaFreeHost(self, ptr):
        return self._release(ptr)

    def _cudaMemcpyAsync(self, dst, src, count, kind, stream):
        ctypes.memmove(int(dst), int(src), int(count))
        return (self.ok,)

    def _cudaStreamCreate(self):
        stream = self._handle("cudaStream_t")
        self.streams.add(int(stream))
        return self.ok, stream

    def _cudaStreamSynchronize(self, stream):
        return (self.ok,)

    def _cudaStreamDestroy(self, stream):
        self.streams.discard(int(stream))
        return (self.ok,)

    def _cudaEventCreate(self):
        return self.ok, self._handle("cudaEvent_t")

    def _cudaEventRecord(self, event, stream):
        return (self.ok,)

    def _cudaEventSynchronize(self, event):
        return (self.ok,)

    def _cudaEventElapsedTime(self, start, end):
        return self.ok, 0.25

    def _cudaEventDestroy(self, event):
        return (self.ok,)

    def _cudaStreamBeginCapture(self, stream, mode):
        self.world.capturing = []
        self.world.capture_invalidated = False
        return (self.ok,)

    def _cudaStreamEndCapture(self, stream):
        ops, self.world.capturing = self.world.capturing, None
        if self.world.capture_invalidated:
            self.world.capture_invalidated = False
            self.last_error = self.rt.cudaError_t.cudaErrorStreamCaptureInvalidated
            return self.rt.cudaError_t.cudaErrorStreamCaptureInvalidated, None
        graph = self._handle("cudaGraph_t")
        self.graphs[int(graph)] = ops
        return self.ok, graph

    def _cudaGetLastError(self):
        err, self.last_error = self.last_error, self.ok
        return (err,)

    def _cudaDriverGetVersion(self):
        return self.ok, self.driver

    def _cudaRuntimeGetVersion(self):
        return self.rt.cudaRuntimeGetVersion()  # the real answer: needs no driver

    def _cudaGraphInstantiateWithFlags(self, graph, flags):
        exec_ = self._handle("cudaGraphExec_t")
        self.graphs[int(exec_)] = self.graphs[int(graph)]
        return self.ok, exec_

    def _cudaGraphLaunch(self, graph_exec, stream):
        for fn, shapes, addresses, context_state, generation in self.graphs[int(graph_exec)]:
            # Rule (b): replaying a graph after its context's input shapes changed is not allowed.
            assert context_state["generation"] == generation, (
                "a CUDA graph was replayed after set_input_shape changed the shapes it was captured at (TensorRT #3798)")
            fn(shapes, addresses)
        self.launched += 1
        return (self.ok,)

    def _cudaGraphDestroy(self, graph):
        return (self.ok,)

    def _cudaGraphExecDestroy(self, graph_exec):
        return (self.ok,)


# -- the real cuda.bindings signatures --------------------------------------------------------------
def cudart_call_problem(real, args: tuple, kwargs: dict) -> str | None:
    """None when ``real(*args, **kwargs)`` fits the real function's parameters (count and names)."""
    try:
        inspect.signature(real).bind(*args, **kwargs)
    except TypeError as e:
        return f"arguments {args!r}{kwargs or ''} do not fit {real.__name__}{inspect.signature(real)}: {e}"
    except ValueError:
        return None  # no signature to check against
    return None


def returned_values(real) -> int | None:
    """How many values the real function returns: the items of its docstring's ``Returns`` section
    (cuda-bindings 11.8 indents its docstrings, 12.x/13.x do not: items are the lines at the heading's indent)."""
    doc = real.__doc__ or ""
    m = re.search(r"^([ \t]*)Returns\n\1-+\n(.*?)(?=^\1\S[^\n]*\n\1-+\n|\Z)", doc, re.S | re.M)
    if not m:
        return None
    indent = m.group(1)
    return sum(1 for line in m.group(2).splitlines() if line.startswith(indent) and line[len(indent):][:1].strip())


def cudart_return_problem(real, result) -> str | None:
    """None when ``result`` has the shape the real function returns (a tuple of that many values)."""
    want = returned_values(real)
    if want is None:
        return None
    got = len(result) if isinstance(result, tuple) else None
    if got != want:
        return f"returned {result!r} ({got} values); the real function returns a tuple of {want}"
    return None
