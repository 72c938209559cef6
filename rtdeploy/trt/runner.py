"""Runner over a TensorRT engine: the same protocol as the torch and onnxruntime runners.

    with TrtRunner("resnet50.int8.engine", cuda_graph=True) as r:
        out = r.infer({"input": batch})        # H2D copy, compute, D2H copy; outputs as numpy
        r.last_timings                         # {'h2d_ms', 'compute_ms', 'd2h_ms', 'total_ms'} (CUDA events)
        ms = r.infer_device_only()             # compute alone, on the inputs already on the device

Buffers are allocated once, at ``activate``, for the profile's largest batch: device buffers for
every input and output and page-locked (pinned) host buffers beside them, so copies are
asynchronous and ``infer`` allocates nothing. Execution uses the API common to 8.6, 10.x and
11.x: ``set_input_shape`` + ``set_tensor_address`` + ``execute_async_v3`` on one stream.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtdeploy.errors import EngineError
from rtdeploy.runners.base import Runner
from rtdeploy.trt.options import BatchProfile

log = logging.getLogger(__name__)


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

    Attributes:
        last_timings: milliseconds of the last call, from CUDA events: ``h2d_ms``, ``compute_ms``,
            ``d2h_ms``, ``total_ms`` after :meth:`infer`; ``compute_ms`` after :meth:`infer_device_only`.
        profile: the engine's batch profile (min, opt, max); available once active.
        manifest: the engine's manifest (None when it has none).
    """

    def __init__(self, engine_path: str | os.PathLike, *, cuda_graph: bool = False, device: int = 0,
                 trt_module=None, memory=None):
        super().__init__()
        self.path = Path(engine_path)
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
        self._graphs: dict[tuple, object] = {}
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
            engine, self.manifest, self._runtime = load_engine(trt, self.path, device=mem.device_info())
            self._engine = engine
            if self.manifest is not None:
                self.name = f"tensorrt[{self.manifest.precision}{',graph' if self.cuda_graph else ''}]"
            self._context = engine.create_execution_context()
            if self._context is None:
                raise EngineError(f"TensorRT could not create an execution context for {self.path.name} (out of GPU memory?); "
                                  "free GPU memory or rebuild with a smaller --batch MAX")
            self._allocate(trt, engine, mem)
            self._stream = mem.stream()
            self._events = [mem.event() for _ in range(4)]
        except BaseException:
            self._release()
            raise

    def _allocate(self, trt, engine, mem) -> None:
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
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
            for g in self._graphs.values():
                mem.destroy_graph(g)
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
        return {name: self._view(t, out_shapes[name]).copy() for name, t in self._outputs.items()}

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
            if not self.profile.contains(batch):
                raise EngineError(f"batch {batch} is outside the profile {self.profile} (MIN:OPT:MAX) of {self.path.name}; "
                                  f"send {self.profile.min}..{self.profile.max} samples per call, or rebuild with a --batch that covers {batch}")
            np.copyto(t.host[:batch], arr, casting="same_kind" if arr.dtype.kind == t.dtype.kind else "unsafe")
            if self._shapes.get(name) != arr.shape:
                if not self._context.set_input_shape(name, tuple(arr.shape)):
                    raise EngineError(f"TensorRT refused input shape {tuple(arr.shape)} for {name}; the profile is {self.profile}")
                self._shapes[name] = tuple(arr.shape)
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
        if not self.cuda_graph:
            return self._execute()
        key = tuple(sorted(self._shapes.items()))
        graph = self._graphs.get(key)
        if graph is None:
            # TensorRT does its shape-dependent set-up on the first enqueue; capture the second.
            self._execute()
            self._memory.begin_capture(self._stream)
            try:
                self._execute()
            finally:
                graph = self._memory.end_capture(self._stream)
            self._graphs[key] = graph
        self._memory.launch(graph, self._stream)

    def _execute(self) -> None:
        if not self._context.execute_async_v3(int(self._stream)):
            raise EngineError(f"TensorRT could not enqueue {self.path.name} (execute_async_v3 returned False); run with -vv for its log")

    @staticmethod
    def _nbytes(t: _Tensor, shape: tuple[int, ...]) -> int:
        return int(np.prod(shape)) * t.dtype.itemsize

    @staticmethod
    def _view(t: _Tensor, shape: tuple[int, ...]) -> np.ndarray:
        return t.host.reshape(-1)[: int(np.prod(shape))].reshape(shape)
