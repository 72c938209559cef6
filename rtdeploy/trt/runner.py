"""Runner over a TensorRT engine: the same protocol as the torch and onnxruntime runners.

    with TrtRunner("resnet50.int8.engine", cuda_graph=True) as r:
        out = r.infer({"input": batch})        # H2D copy, compute, D2H copy; outputs as numpy
        r.last_timings                         # {'h2d_ms', 'compute_ms', 'd2h_ms', 'total_ms'} (CUDA events)
        ms = r.infer_device_only()             # compute alone, on the inputs already on the device

A batch smaller than the profile's MIN (the last, partial batch of a data set on a static-profile engine)
is padded with zeros up to MIN and only its own outputs are returned: images are independent in
inference, so the padding changes none of them.

Buffers are allocated once, at ``activate``, for the profile's largest batch: device buffers for
every input and output and page-locked (pinned) host buffers beside them, so copies are
asynchronous and ``infer`` allocates nothing. Execution uses the API common to 8.6, 10.x and
11.x: ``set_input_shape`` + ``set_tensor_address`` + ``execute_async_v3`` on one stream.

CUDA graphs (``cuda_graph=True``): a captured graph is valid only for the input shapes it was
captured at; TensorRT requires a re-capture after ``set_input_shape`` changes them (NVIDIA/TensorRT
#3798; developer guide, "CUDA Graphs"). Each runner keeps ONE graph, for its current shapes, and
re-captures when a call brings another batch size. Callers that alternate batch sizes should use
one runner per batch size, sharing one deserialized engine (:func:`load_shared_engine`): each
runner owns its execution context, stream, buffers and graph. If TensorRT cannot enqueue under
capture, the runner does what trtexec does: ends the capture, clears the error, warns once and
runs without graphs.

Scratch memory: by default each execution context allocates its own device memory for the engine's
intermediate tensors. Runners that never run at the same time (one per batch size, as ``bench`` opens them)
can share one buffer instead (``scratch=``, from :class:`ScratchPool`): the context is then created
without device memory and given the buffer (TensorRT: ``create_execution_context_without_device_memory``
+ ``device_memory`` on 8.x, ``create_execution_context(USER_MANAGED)`` + ``set_device_memory(ptr, size)``
on 10.x/11.x; the size must be at least the engine's ``device_memory_size_v2``, and the memory must not
be used by a parallel execution context while an enqueue runs — the 10.x/11.x bindings' docstring).

Per-layer profiling: pass ``profiler=`` (a ``trt.IProfiler``); it is attached to the runner's
execution context. Graph replays do not go through TensorRT's enqueue, so TensorRT reports no layer
times for them: ``profiler`` with ``cuda_graph=True`` is refused (trtexec likewise profiles in a
separate run, ``--separateProfileRun``, from the graph-timed one).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtdeploy.errors import EngineError
from rtdeploy.runners.base import Runner
from rtdeploy.trt.features import Features
from rtdeploy.trt.options import BatchProfile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedEngine:
    """A deserialized engine that several :class:`TrtRunner` s can share (``TrtRunner(path, engine=shared)``).

    Attributes:
        path: the plan file; manifest: its manifest (or None); engine, runtime: TensorRT objects
            (the runtime must outlive the engine); trt: the ``tensorrt`` module; memory: the
            device-memory object the runners use by default.
    """

    path: Path
    manifest: dict | None
    engine: object
    runtime: object
    trt: object
    memory: object


def load_shared_engine(engine_path: str | os.PathLike, *, device: int = 0, trt_module=None, memory=None) -> SharedEngine:
    """Check and deserialize an engine once, for several runners (one execution context and one
    CUDA stream each). Keep the returned object alive as long as any runner using it.

    Raises:
        EngineError, ArtifactError, MissingDependency: as :func:`rtdeploy.trt.engine_file.load_engine`.
    """
    from rtdeploy.trt.device_memory import open_device_memory
    from rtdeploy.trt.engine_file import load_engine
    from rtdeploy.trt.loader import import_tensorrt

    trt = trt_module or import_tensorrt()
    mem = memory if memory is not None else open_device_memory(device)
    engine, manifest, runtime = load_engine(trt, Path(engine_path), device=mem.device_info())
    return SharedEngine(Path(engine_path), manifest, engine, runtime, trt, mem)


@dataclass(frozen=True)
class Scratch:
    """Device memory an execution context uses for its intermediate tensors, shared by contexts that never run
    at the same time. ``ptr``: the device address (cudaMalloc: 256-byte aligned, as TensorRT requires); ``size``: bytes."""

    ptr: int
    size: int


def scratch_size(trt, engine) -> int:
    """The device memory an execution context of ``engine`` needs (``device_memory_size_v2`` from 10.x, else ``device_memory_size``)."""
    v2 = Features.detect(trt).device_memory_size_v2
    return int(engine.device_memory_size_v2 if v2 else engine.device_memory_size)


class ScratchPool:
    """One scratch buffer per lane (a lane: runners that run one after the other, e.g. stream ``i`` of every
    batch size of a benchmark). A lane's buffer is reused while it is large enough, replaced by a larger one
    (the old one stays valid for the contexts that hold it) otherwise; :meth:`close` frees them all, after
    the runners that use them are closed."""

    def __init__(self, memory):
        self.memory = memory
        self._lanes: dict[int, Scratch] = {}
        self._all: list[int] = []

    def get(self, lane: int, size: int) -> Scratch:
        held = self._lanes.get(lane)
        if held is None or held.size < size:
            held = Scratch(self.memory.malloc(max(int(size), 1)), max(int(size), 1))
            self._lanes[lane] = held
            self._all.append(held.ptr)
        return held

    @property
    def total_bytes(self) -> int:
        return sum(s.size for s in self._lanes.values())

    def close(self) -> None:
        for ptr in self._all:
            self.memory.free(ptr)
        self._all, self._lanes = [], {}


def _new_context(trt, engine, scratch: Scratch | None):
    """An execution context: with its own device memory, or on ``scratch`` (see the module docstring)."""
    if scratch is None:
        return engine.create_execution_context()
    features = Features.detect(trt)
    need = scratch_size(trt, engine)
    if need > scratch.size:
        raise EngineError(f"the shared scratch memory ({scratch.size} bytes) is smaller than the {need} bytes this engine needs")
    context = (engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED) if features.allocation_strategy
               else engine.create_execution_context_without_device_memory())
    if context is None:
        return None
    if features.set_device_memory:
        context.set_device_memory(scratch.ptr, scratch.size)
    else:
        context.device_memory = scratch.ptr
    return context


@dataclass
class _Tensor:
    name: str
    dtype: np.dtype
    max_shape: tuple[int, ...]
    device: int = 0
    host: np.ndarray | None = None


class TrtRunner(Runner):
    """Runs a TensorRT engine file.

    Args:
        engine_path: the plan file written by ``rtdeploy build-engine`` (manifest beside it).
        cuda_graph: capture each batch size's execution in a CUDA graph on first use and replay it
            (less launch overhead for small batches).
        device: CUDA device ordinal.
        trt_module: the ``tensorrt`` module to use (default: the installed one).
        memory: a device-memory object with :class:`rtdeploy.trt.device_memory.CudaRuntime`'s
            methods (default: cuda-python on ``device``).
        engine: a :class:`SharedEngine` to run instead of deserializing ``engine_path`` again
            (its ``trt`` and ``memory`` are used unless given).
        profiler: a ``trt.IProfiler`` attached to this runner's execution context
            (``context.profiler``); not with ``cuda_graph=True``.
        scratch: a :class:`Scratch` buffer the execution context uses instead of its own device
            memory (shared with runners that never run at the same time as this one).

    Attributes:
        last_timings: milliseconds of the last call, from CUDA events: ``h2d_ms``, ``compute_ms``,
            ``d2h_ms``, ``total_ms`` after :meth:`infer`; ``compute_ms`` after :meth:`infer_device_only`.
        profile: the engine's batch profile (min, opt, max); available once active.
        manifest: the engine's manifest (None when it has none).
    """

    def __init__(self, engine_path: str | os.PathLike | None = None, *, cuda_graph: bool = False, device: int = 0,
                 trt_module=None, memory=None, engine: SharedEngine | None = None, profiler=None, scratch: Scratch | None = None):
        super().__init__()
        if engine_path is None and engine is None:
            raise ValueError("give an engine file or engine=load_shared_engine(path)")
        if profiler is not None and cuda_graph:
            raise ValueError("profiler= needs cuda_graph=False: TensorRT reports layer times for its enqueues, and a CUDA graph "
                             "replay is not one; profile in a separate runner without graphs")
        self.path = Path(engine_path) if engine_path is not None else engine.path
        self._shared = engine
        self.profiler = profiler
        self.scratch = scratch
        if engine is not None:
            trt_module = trt_module or engine.trt
            memory = memory if memory is not None else engine.memory
        self.cuda_graph = cuda_graph
        self.device_index = device
        self._trt = trt_module
        self._memory = memory
        self.name = f"tensorrt{'[graph]' if cuda_graph else ''}"
        self.last_timings: dict[str, float] = {}
        self.profile: BatchProfile | None = None
        self.manifest = None  # the typed EngineManifest once activated (None: the engine has no manifest)
        self._reset_state()

    def _reset_state(self) -> None:
        self._engine = self._context = self._runtime = self._stream = None
        self._inputs: dict[str, _Tensor] = {}
        self._outputs: dict[str, _Tensor] = {}
        self._events: list = []
        self._graph = None  # the executable graph for the current input shapes
        self._graph_failed = False
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._batch = 0

    # -- set-up -------------------------------------------------------------------------------
    def _activate(self) -> None:
        from rtdeploy.trt.device_memory import open_device_memory
        from rtdeploy.trt.engine_file import load_engine
        from rtdeploy.trt.loader import import_tensorrt

        trt = self._trt or import_tensorrt()
        self._trt = trt
        mem = self._memory if self._memory is not None else open_device_memory(self.device_index)
        self._memory = mem
        try:
            if self._shared is not None:
                engine, self.manifest, self._runtime = self._shared.engine, self._shared.manifest, self._shared.runtime
            else:
                engine, self.manifest, self._runtime = load_engine(trt, self.path, device=mem.device_info())
            self._engine = engine
            if self.manifest is not None:
                self.name = f"tensorrt[{self.manifest.precision}{',graph' if self.cuda_graph else ''}]"
            self._context = _new_context(trt, engine, self.scratch)
            if self._context is None:
                raise EngineError(f"TensorRT could not create an execution context for {self.path.name} (out of GPU memory?); "
                                  "free GPU memory or rebuild with a smaller --batch MAX")
            if self.profiler is not None:
                self._context.profiler = self.profiler
            self._allocate(trt, engine, mem)
            self._stream = mem.stream()
            self._events = [mem.event() for _ in range(4)]
        except BaseException:
            self._release()
            raise

    def _allocate(self, trt, engine, mem) -> None:
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = _numpy_dtype(trt, engine.get_tensor_dtype(name), name, self.path)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                shapes = [tuple(s) for s in engine.get_tensor_profile_shape(name, 0)]
                self._inputs[name] = _Tensor(name, dtype, shapes[2])
                self.profile = BatchProfile(shapes[0][0], shapes[1][0], shapes[2][0])
                self._context.set_input_shape(name, shapes[2])
            else:
                self._outputs[name] = _Tensor(name, dtype, ())
        for name, t in self._outputs.items():
            t.max_shape = tuple(self._context.get_tensor_shape(name))
        for t in [*self._inputs.values(), *self._outputs.values()]:
            nbytes = int(np.prod(t.max_shape)) * t.dtype.itemsize
            t.device = mem.malloc(nbytes)
            t.host = mem.pinned_empty(t.max_shape, t.dtype)
            self._context.set_tensor_address(t.name, t.device)
        self.input_names, self.output_names = list(self._inputs), list(self._outputs)
        self._shapes = {}

    def _deactivate(self) -> None:
        self._release()

    def _release(self) -> None:
        mem = self._memory
        if mem is not None:
            self._drop_graph()
            for e in self._events:
                mem.destroy_event(e)
            if self._stream is not None:
                mem.destroy_stream(self._stream)
            for t in [*self._inputs.values(), *self._outputs.values()]:
                if t.device:
                    mem.free(t.device)
                if t.host is not None:
                    mem.pinned_free(t.host)
        # The context must go before the engine, and the engine before the runtime.
        self._context = None
        self._engine = None
        self._runtime = None
        self._reset_state()

    # -- running ------------------------------------------------------------------------------
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mem, events = self._memory, self._events
        self.stage_inputs(feed)
        mem.record(events[0], self._stream)
        for t in self._inputs.values():
            mem.copy_htod(t.device, t.host, self._nbytes(t, self._shapes[t.name]), self._stream)
        mem.record(events[1], self._stream)
        self._enqueue()
        mem.record(events[2], self._stream)
        out_shapes = {name: tuple(self._context.get_tensor_shape(name)) for name in self._outputs}
        for name, t in self._outputs.items():
            mem.copy_dtoh(t.host, t.device, self._nbytes(t, out_shapes[name]), self._stream)
        mem.record(events[3], self._stream)
        mem.synchronize(self._stream)
        h2d, compute, d2h = (mem.elapsed_ms(events[i], events[i + 1]) for i in range(3))
        self.last_timings = {"h2d_ms": h2d, "compute_ms": compute, "d2h_ms": d2h, "total_ms": h2d + compute + d2h}
        return {name: self._view(t, out_shapes[name])[: self._batch].copy() for name, t in self._outputs.items()}

    def stage_inputs(self, feed: dict[str, np.ndarray]) -> None:
        """Check ``feed`` against the engine and copy it into the pinned host buffers; set the
        input shapes. :meth:`infer` calls it; call it yourself before :meth:`infer_device_only`
        runs on fresh inputs (and copy them with ``infer`` once).

        Raises:
            EngineError: missing or extra inputs, a wrong sample shape, or a batch outside the profile.
        """
        if not self._active:
            raise RuntimeError(f"{self.name}: call activate() or use `with runner:` first")
        if set(feed) != set(self._inputs):
            raise EngineError(f"{self.path.name} takes inputs {sorted(self._inputs)}, got {sorted(feed)}")
        for name, t in self._inputs.items():
            arr = np.asarray(feed[name])
            if arr.ndim != len(t.max_shape) or tuple(arr.shape[1:]) != t.max_shape[1:]:
                raise EngineError(f"input {name} has shape {tuple(arr.shape)}; {self.path.name} takes (batch, {', '.join(map(str, t.max_shape[1:]))})")
            batch = arr.shape[0]
            if batch < 1 or batch > self.profile.max:
                raise EngineError(f"batch {batch} is outside the profile {self.profile} (MIN:OPT:MAX) of {self.path.name}; "
                                  f"send 1..{self.profile.max} samples per call, or rebuild with a --batch that covers {batch}")
            run = max(batch, self.profile.min)  # a partial batch is padded up to the profile's MIN
            np.copyto(t.host[:batch], arr, casting="same_kind" if arr.dtype.kind == t.dtype.kind else "unsafe")
            t.host[batch:run] = 0
            shape = (run, *arr.shape[1:])
            if self._shapes.get(name) != shape:
                # A captured graph is only valid for the shapes it was captured at (TensorRT #3798).
                self._drop_graph()
                if not self._context.set_input_shape(name, shape):
                    raise EngineError(f"TensorRT refused input shape {shape} for {name}; the profile is {self.profile}")
                self._shapes[name] = shape
            self._batch = batch

    def infer_device_only(self) -> float:
        """Run the engine once on the inputs already on the device (no host copies); for timing.

        Returns:
            The compute time in milliseconds (CUDA events); also in ``last_timings["compute_ms"]``.

        Raises:
            RuntimeError: no input was staged yet (call :meth:`infer` once first).
        """
        if not self._active or not self._shapes:
            raise RuntimeError(f"{self.name}: call infer() once before infer_device_only() so inputs are on the device")
        mem, events = self._memory, self._events
        mem.record(events[1], self._stream)
        self._enqueue()
        mem.record(events[2], self._stream)
        mem.synchronize(self._stream)
        compute = mem.elapsed_ms(events[1], events[2])
        self.last_timings = {"compute_ms": compute}
        return compute

    def _enqueue(self) -> None:
        if not self.cuda_graph or self._graph_failed:
            return self._execute()
        if self._graph is None:
            # TensorRT does its shape-dependent set-up on the first enqueue; capture the second.
            self._execute()
            self._graph = self._capture()
            if self._graph is None:
                return self._execute()
        self._memory.launch(self._graph, self._stream)

    def _capture(self):
        """One enqueue captured into a graph; None (and graphs off for this runner) when TensorRT
        cannot enqueue under capture — trtexec's handling (sampleInference.cpp, endCaptureOnError)."""
        mem = self._memory
        mem.begin_capture(self._stream)
        try:
            ok = self._context.execute_async_v3(int(self._stream))
        except BaseException:
            mem.end_capture_on_error(self._stream)
            raise
        if not ok:
            mem.end_capture_on_error(self._stream)
            self._graph_failed = True
            log.warning("%s: CUDA graph capture failed (the engine has work not allowed under capture); running without "
                        "CUDA graphs", self.path.name)
            return None
        return mem.end_capture(self._stream)

    def _drop_graph(self) -> None:
        if self._graph is not None:
            graph, self._graph = self._graph, None
            self._memory.destroy_graph(graph)

    def _execute(self) -> None:
        if not self._context.execute_async_v3(int(self._stream)):
            raise EngineError(f"TensorRT could not enqueue {self.path.name} (execute_async_v3 returned False); run with -vv for its log")

    @staticmethod
    def _nbytes(t: _Tensor, shape: tuple[int, ...]) -> int:
        return int(np.prod(shape)) * t.dtype.itemsize

    @staticmethod
    def _view(t: _Tensor, shape: tuple[int, ...]) -> np.ndarray:
        return t.host.reshape(-1)[: int(np.prod(shape))].reshape(shape)


def _numpy_dtype(trt, dtype, name: str, path: Path) -> np.dtype:
    """The numpy type of an I/O tensor; BF16/FP8/INT4 I/O (no numpy type) is a clear error."""
    try:
        return np.dtype(trt.nptype(dtype))
    except (TypeError, KeyError, ValueError) as e:
        label = getattr(dtype, "name", str(dtype))
        raise EngineError(f"{path.name}: tensor {name} is {label}, which has no numpy type, so this runner cannot feed or read it; "
                          "rebuild the engine with FP32, FP16 or INT8 inputs and outputs (the ONNX's I/O types)") from e
