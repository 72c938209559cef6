"""One small device-memory interface: device and pinned host buffers, streams, events, CUDA graphs.

Implemented on cuda-python's runtime bindings (``cuda.bindings.runtime``; the older
``cuda.cudart`` module of cuda-python 11.x/12.x is accepted too). Why cuda-python and not pycuda:
cuda-python ships binary wheels that install anywhere (no compiler, no driver needed to install or
import), matches the CUDA runtime TensorRT itself uses, and is what NVIDIA's TensorRT samples use;
pycuda compiles against a local CUDA toolkit and fails to build without one. Another binding can
be plugged in by passing any object with :class:`CudaRuntime`'s methods to the runner.

Every CUDA call goes through :meth:`CudaRuntime._call`, which turns an error code into an
:class:`EngineError` (or :class:`MissingDependency` when there is no driver or GPU).
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rtdeploy.errors import EngineError, MissingDependency

log = logging.getLogger(__name__)

CUDA_HINT = 'install it with pip install "rtdeploy[gpu]" (cuda-python; rtdeploy doctor says which CUDA major fits the driver)'
_NO_GPU_ERRORS = {"cudaErrorInsufficientDriver", "cudaErrorNoDevice", "cudaErrorInitializationError",
                  "cudaErrorStubLibrary", "cudaErrorDevicesUnavailable", "cudaErrorSystemNotReady",
                  "cudaErrorCompatNotSupportedOnDevice", "cudaErrorSystemDriverMismatch"}


@dataclass(frozen=True)
class DeviceInfo:
    """The GPU an engine is built for or runs on.

    Attributes:
        index: CUDA device ordinal.
        name: e.g. ``NVIDIA A100-SXM4-80GB`` or ``Orin``.
        compute_capability: ``"8.7"``.
        total_bytes, free_bytes: device memory (system memory shared with the CPU when integrated).
        integrated: True on Jetson (unified memory).
    """

    index: int
    name: str
    compute_capability: str
    total_bytes: int
    free_bytes: int
    integrated: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def load_cudart():
    """The cuda-python runtime module.

    Raises:
        MissingDependency: cuda-python is not installed.
    """
    try:
        from cuda.bindings import runtime

        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python 11.x / early 12.x

        return cudart
    except ImportError as e:
        raise MissingDependency(f"cuda-python cannot be imported ({e}); {CUDA_HINT}") from e


def open_device_memory(device: int = 0) -> "CudaRuntime":
    """A :class:`CudaRuntime` on ``device``.

    Raises:
        MissingDependency: no cuda-python, no driver, or no such GPU.
    """
    return CudaRuntime(load_cudart(), device=device)


class CudaRuntime:
    """Device memory, pinned host memory, streams, events and graphs through the CUDA runtime.

    Args:
        cudart: the runtime bindings module (``cuda.bindings.runtime``).
        device: the device ordinal to use.

    Raises:
        MissingDependency: no driver or no GPU (``device`` out of range included).
    """

    def __init__(self, cudart, device: int = 0):
        self.rt = cudart
        self.binding = f"cuda-python ({getattr(cudart, '__name__', 'cudart')})"
        self.device = device
        self._device_ptrs: set[int] = set()
        self._pinned: dict[int, int] = {}
        count = self._call("cudaGetDeviceCount")
        if device >= count:
            raise MissingDependency(f"CUDA device {device} asked, but this machine has {count} NVIDIA GPU(s); "
                                    "run on a machine with an NVIDIA GPU (rtdeploy doctor shows what is there)")
        self._call("cudaSetDevice", device)

    # -- errors -------------------------------------------------------------------------------
    def _call(self, name: str, *args):
        """Call ``cudart.<name>(*args)``; return its values after the error code (None, one, or a tuple)."""
        try:
            result = getattr(self.rt, name)(*args)
        except RuntimeError as e:
            # cuda-bindings 11.8 raises instead of returning an error code when the driver library is absent: its lazy
            # driver initialisation (cydriver.pyx) raises RuntimeError('Failed to dlopen libcuda.so.1'), and on every
            # later call RuntimeError('Function "cuInit" not found').
            if "dlopen" not in str(e) and "not found" not in str(e):
                raise
            raise MissingDependency(f"no usable NVIDIA GPU: no NVIDIA driver is loaded ({e} in {name}); install the NVIDIA "
                                    "driver on a machine with an NVIDIA GPU — rtdeploy doctor shows what is missing") from None
        err, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if err != self.rt.cudaError_t.cudaSuccess:
            raise self._error(name, err)
        return None if not values else values[0] if len(values) == 1 else values

    def _error(self, name: str, err) -> Exception:
        code = getattr(err, "name", str(err))
        try:
            text = self.rt.cudaGetErrorString(err)[1]
            text = text.decode() if isinstance(text, bytes) else str(text)
        except Exception:  # the message is a courtesy; the code alone is enough
            text = code
        if code in _NO_GPU_ERRORS:
            return MissingDependency(self._no_gpu_reason(name, code, text))
        return EngineError(f"CUDA call {name} failed: {text} ({code})")

    def _no_gpu_reason(self, name: str, code: str, text: str) -> str:
        """Tell "no driver", "driver too old for this cuda-python" and "no GPU" apart (one line each)."""
        where = f"({code} in {name})"
        if code == "cudaErrorNoDevice":
            return (f"no usable NVIDIA GPU: the driver is installed but reports no CUDA device {where}; run on a machine with an "
                    "NVIDIA GPU (check nvidia-smi; in a container, pass the GPU through) — rtdeploy doctor shows what is there")
        driver, runtime = self._versions()
        if code == "cudaErrorInsufficientDriver" and driver == 0:
            return (f"no usable NVIDIA GPU: no NVIDIA driver is loaded (CUDA says {text} {where}); install the NVIDIA driver "
                    "on a machine with an NVIDIA GPU — rtdeploy doctor shows what is missing")
        if code == "cudaErrorInsufficientDriver" and runtime and driver < runtime:
            need = runtime // 1000
            return (f"no usable NVIDIA GPU: the NVIDIA driver supports CUDA {_cuda_version(driver)}, older than the CUDA "
                    f"{_cuda_version(runtime)} that cuda-python {need}.x needs {where}; install cuda-python<{need} "
                    f"(pip install \"rtdeploy[gpu-cu{need - 1}]\": TensorRT and cuda-python of CUDA {need - 1}) to match the "
                    "driver, or update the driver")
        return (f"no usable NVIDIA GPU: CUDA says {text} {where}; run on a machine with an NVIDIA GPU and driver "
                "(rtdeploy doctor shows what is missing)")

    def _versions(self) -> tuple[int, int]:
        """(driver's CUDA version, cuda-python's runtime version) as 12040-style ints; 0 when unknown or no driver."""
        out = []
        for fn in ("cudaDriverGetVersion", "cudaRuntimeGetVersion"):
            try:
                err, value = getattr(self.rt, fn)()
                out.append(int(value) if err == self.rt.cudaError_t.cudaSuccess else 0)
            except Exception:  # a courtesy for the message only
                out.append(0)
        return out[0], out[1]

    # -- device -------------------------------------------------------------------------------
    def device_info(self) -> DeviceInfo:
        """Name, compute capability and memory of the current device."""
        prop = self._call("cudaGetDeviceProperties", self.device)
        free, total = self._call("cudaMemGetInfo")
        name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        return DeviceInfo(index=self.device, name=name.rstrip("\x00").strip(), compute_capability=f"{prop.major}.{prop.minor}",
                          total_bytes=int(total), free_bytes=int(free), integrated=bool(prop.integrated))

    # -- memory -------------------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        """Device memory of ``nbytes``; returns its address."""
        ptr = int(self._call("cudaMalloc", max(int(nbytes), 1)))
        self._device_ptrs.add(ptr)
        return ptr

    def free(self, ptr: int) -> None:
        if ptr in self._device_ptrs:
            self._device_ptrs.discard(ptr)
            self._call("cudaFree", ptr)

    def pinned_empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A page-locked host array (fast, asynchronous copies); free with :meth:`pinned_free`."""
        dtype = np.dtype(dtype)
        nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
        ptr = int(self._call("cudaMallocHost", nbytes))
        raw = (ctypes.c_uint8 * nbytes).from_address(ptr)
        arr = np.frombuffer(raw, dtype=np.uint8, count=nbytes)[: int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)
        self._pinned[arr.ctypes.data] = ptr
        return arr

    def pinned_free(self, arr: np.ndarray) -> None:
        ptr = self._pinned.pop(arr.ctypes.data, None)
        if ptr is not None:
            self._call("cudaFreeHost", ptr)

    def copy_htod(self, dst: int, src: np.ndarray, nbytes: int, stream) -> None:
        """Asynchronous host -> device copy of the first ``nbytes`` of ``src``."""
        self._call("cudaMemcpyAsync", dst, src.ctypes.data, nbytes, self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)

    def copy_dtoh(self, dst: np.ndarray, src: int, nbytes: int, stream) -> None:
        """Asynchronous device -> host copy into the first ``nbytes`` of ``dst``."""
        self._call("cudaMemcpyAsync", dst.ctypes.data, src, nbytes, self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)

    # -- streams and events -------------------------------------------------------------------
    def stream(self):
        """A new stream (pass ``int(stream)`` to TensorRT)."""
        return self._call("cudaStreamCreate")

    def synchronize(self, stream) -> None:
        self._call("cudaStreamSynchronize", stream)

    def destroy_stream(self, stream) -> None:
        self._call("cudaStreamDestroy", stream)

    def event(self):
        return self._call("cudaEventCreate")

    def record(self, event, stream) -> None:
        self._call("cudaEventRecord", event, stream)

    def elapsed_ms(self, start, end) -> float:
        """Milliseconds between two recorded events (waits for ``end``)."""
        self._call("cudaEventSynchronize", end)
        return float(self._call("cudaEventElapsedTime", start, end))

    def destroy_event(self, event) -> None:
        self._call("cudaEventDestroy", event)

    # -- CUDA graphs --------------------------------------------------------------------------
    def begin_capture(self, stream) -> None:
        """Start recording the work enqueued on ``stream`` into a graph (this thread only)."""
        self._call("cudaStreamBeginCapture", stream, self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)

    def end_capture(self, stream):
        """Stop recording; returns an executable graph for :meth:`launch`."""
        graph = self._call("cudaStreamEndCapture", stream)
        try:
            # cudaGraphInstantiateWithFlags(graph, flags) -> (err, exec) in cuda-bindings 11.8, 12.x and 13.x alike;
            # cudaGraphInstantiate is (graph, pLogBuffer, bufferSize) in 11.8 (JetPack 5) and (graph, flags) from 12.0.
            return self._call("cudaGraphInstantiateWithFlags", graph, 0)
        finally:
            self._call("cudaGraphDestroy", graph)

    def end_capture_on_error(self, stream) -> None:
        """After a failed enqueue during capture: end the capture, tolerating an invalidated one,
        destroy any partial graph and clear CUDA's error state (what trtexec's ``endCaptureOnError``
        does, samples/common/sampleDevice.h)."""
        result = self.rt.cudaStreamEndCapture(stream)
        err, graph = (result[0], result[1]) if isinstance(result, tuple) and len(result) > 1 else (result, None)
        if err == self.rt.cudaError_t.cudaSuccess and graph is not None and int(graph) != 0:
            self.rt.cudaGraphDestroy(graph)
        elif err not in (self.rt.cudaError_t.cudaSuccess, self.rt.cudaError_t.cudaErrorStreamCaptureInvalidated):
            log.debug("cudaStreamEndCapture after a failed capture: %s", getattr(err, "name", err))
        self.rt.cudaGetLastError()  # clears the error the failed capture left behind

    def launch(self, graph_exec, stream) -> None:
        self._call("cudaGraphLaunch", graph_exec, stream)

    def destroy_graph(self, graph_exec) -> None:
        self._call("cudaGraphExecDestroy", graph_exec)

    # -- teardown -----------------------------------------------------------------------------
    def close(self) -> None:
        """Free every buffer still held (idempotent)."""
        for ptr in list(self._device_ptrs):
            self.free(ptr)
        for arr_addr in list(self._pinned):
            self._call("cudaFreeHost", self._pinned.pop(arr_addr))
