"""Backends for the benchmark: what each supports, whether it is installed, and how to make its runner.

    torch        eager PyTorch (CPU or CUDA); fp16 is autocast on CUDA; optional channels_last and
                 torch.compile
    onnxruntime  an fp32 / fp16 / int8 ONNX file (CPU provider, or CUDA provider with --device cuda)
    tensorrt     an engine built from that ONNX file, run by ``rtdeploy.trt.runner.TrtRunner`` (CUDA)

Heavy libraries are imported only inside functions, so a missing one surfaces as a
:class:`MissingDependency` naming what to install, not as an ImportError.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from rtdeploy.errors import MissingDependency

log = logging.getLogger(__name__)

# Which extra (or package) provides a core backend, for the "not installed" message (TensorRT's own
# error from rtdeploy.trt.loader says how to get it).
INSTALL_HINT = {
    "torch": "torch is a core dependency: pip install rtdeploy (with a CUDA build of torch for --device cuda)",
    "onnxruntime": "onnxruntime is a core dependency: pip install rtdeploy (onnxruntime-gpu in its place for --device cuda)",
}


def unsupported_reason(backend: str, precision: str, device: str) -> str | None:
    """Why ``backend`` cannot time ``precision`` on ``device`` (None when it can).

    Unsupported combinations are skipped with this note rather than failing the whole sweep.
    """
    if backend == "torch":
        if precision == "int8":
            return "torch eager has no INT8 path here; time INT8 with --backend onnxruntime or tensorrt"
        if precision == "fp16" and device != "cuda":
            return "torch FP16 is autocast on CUDA only; use --device cuda, or --backend onnxruntime for an FP16 graph on CPU"
    return None


def check_installed(backend: str) -> None:
    """Raise if ``backend``'s library cannot be imported.

    Raises:
        MissingDependency: the library is absent (the message says which extra installs it).
    """
    if backend == "tensorrt":
        from rtdeploy.trt.loader import import_tensorrt  # rtdeploy.trt is the one place that imports tensorrt

        try:
            import_tensorrt()
        except MissingDependency as e:
            raise MissingDependency(f"--backend tensorrt is not installed here: {e}") from None  # e says how to install it
        return
    try:
        importlib.import_module(backend)
    except ImportError as e:
        raise MissingDependency(f"--backend {backend} is not installed here ({backend} cannot be imported: {e}); {INSTALL_HINT[backend]}") from None


def check_device(backends: tuple[str, ...], device: str) -> None:
    """Check that every backend can run on ``device`` on this machine.

    TensorRT always runs on the GPU, whatever ``device`` says (it applies to torch and onnxruntime).

    Raises:
        MissingDependency: CUDA asked (or TensorRT) without a GPU, or a backend without CUDA support.
    """
    from rtdeploy.machine import cuda_device_visible

    if "tensorrt" in backends and not cuda_device_visible():
        raise MissingDependency("--backend tensorrt needs an NVIDIA GPU and none is visible here; "
                                "run on a GPU machine, or time --backend onnxruntime on the CPU")
    if device != "cuda":
        return
    if not cuda_device_visible():
        raise MissingDependency("--device cuda asked but no NVIDIA GPU is visible here (no driver device, torch sees no CUDA); "
                                "run on a GPU machine or use --device cpu")
    if "torch" in backends:
        import torch

        if not torch.cuda.is_available():
            raise MissingDependency(f"torch {torch.__version__} here cannot use CUDA (a CPU build, or no driver); "
                                    "install a CUDA build of torch to time --backend torch on --device cuda")
    if "onnxruntime" in backends:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise MissingDependency("onnxruntime here has no CUDAExecutionProvider; install onnxruntime-gpu in place of onnxruntime "
                                    "to time --backend onnxruntime on --device cuda")


def torch_runner(meta, precision: str, device: str, *, channels_last: bool = False, compile: bool = False, weights=None):
    """A ``TorchRunner`` for the seed-0 (or ``weights``) model of ``meta`` — the same weights the sweep exports."""
    from rtdeploy.models.reference import build_torch_model
    from rtdeploy.runners.torch_runner import TorchRunner

    model = build_torch_model(meta, weights)
    if compile:
        import torch

        model = model.to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        model = torch.compile(model)
    runner = TorchRunner(model, meta.input_name, meta.output_name, device=device, channels_last=channels_last,
                         autocast_fp16=precision == "fp16")
    if compile:
        runner.name = runner.name.replace("torch[", "torch.compile[")
    return runner


def ort_runner(path: Path, device: str, threads: int):
    """An ``OrtRunner`` on the CPU provider, or the CUDA provider (CPU fallback) for ``device="cuda"``."""
    from rtdeploy.runners.ort_runner import OrtRunner

    providers = ("cuda", "cpu") if device == "cuda" else ("cpu",)
    return OrtRunner(path, providers=providers, threads=threads)


def trt_shared_engine(engine: Path):
    """``engine`` checked and deserialized once, for all the runners (execution contexts) of a slot.

    Raises:
        MissingDependency: TensorRT, cuda-python or a GPU is absent.
    """
    from rtdeploy.trt.runner import load_shared_engine

    return load_shared_engine(engine)


def trt_runner(engine: Path, *, cuda_graph: bool, shared=None, scratch=None):
    """A ``TrtRunner`` over a serialized engine: its own execution context and CUDA stream, on the
    ``shared`` deserialized engine when given, its intermediate tensors in ``scratch`` when given
    (TensorRT itself is imported when the runner is entered, which raises :class:`MissingDependency` if
    it is absent)."""
    from rtdeploy.trt.runner import TrtRunner

    return TrtRunner(engine, cuda_graph=cuda_graph, engine=shared, scratch=scratch)


def trt_scratch_pool(shared):
    """A :class:`rtdeploy.trt.runner.ScratchPool` on the device memory of a shared engine."""
    from rtdeploy.trt.runner import ScratchPool

    return ScratchPool(shared.memory)


def trt_scratch_size(shared) -> int:
    """The scratch memory an execution context of a shared engine needs."""
    from rtdeploy.trt.runner import scratch_size

    return scratch_size(shared.trt, shared.engine)


STREAM_MODES = {
    "onnxruntime": "one onnxruntime session per stream, each run from its own thread (its own intra-op threads)",
    "torch-cpu": "one torch model called from one thread per stream (torch's intra-op thread pool is shared)",
    "torch-cuda": "one torch model, one CUDA stream and one host thread per stream",
    "tensorrt": "one execution context and CUDA stream per stream, each run from its own thread",
}


def stream_mode(backend: str, device: str) -> str:
    """How ``--streams N`` runs concurrently on ``backend`` (recorded with every result)."""
    return STREAM_MODES[f"torch-{device}" if backend == "torch" else backend]


def make_timers(backend: str, runners: list, feed: dict, device: str, streams: int) -> list:
    """One timer per stream: over ``runners[i]`` (one session or context each), or, for torch, over the
    one model on its own CUDA stream (``device="cuda"``) or thread (CPU)."""
    from rtdeploy.bench.harness import HostTimer, TorchCudaTimer, TrtTimer

    if backend == "torch":
        if device == "cuda":
            import torch

            if streams == 1:
                return [TorchCudaTimer(runners[0], feed)]
            return [TorchCudaTimer(runners[0], feed, stream=torch.cuda.Stream()) for _ in range(streams)]
        return [HostTimer(runners[0], feed) for _ in range(streams)]
    if len(runners) < streams:
        raise ValueError(f"{streams} streams need {streams} runners, got {len(runners)}")
    timer = TrtTimer if backend == "tensorrt" else HostTimer
    return [timer(r, feed) for r in runners[:streams]]


def trt_profiled_runner(engine: Path, times):
    """A ``TrtRunner`` whose execution context reports per-layer times to ``times``
    (a :class:`rtdeploy.trt.profiler.LayerTimes`), without a CUDA graph.

    Raises:
        BenchmarkError: this install's runner cannot attach a profiler.
    """
    import inspect

    from rtdeploy.errors import BenchmarkError
    from rtdeploy.trt.loader import import_tensorrt
    from rtdeploy.trt.profiler import make_trt_profiler
    from rtdeploy.trt.runner import TrtRunner

    if "profiler" not in inspect.signature(TrtRunner).parameters:
        raise BenchmarkError("this rtdeploy's TensorRT runner cannot attach a per-layer profiler; "
                             "update rtdeploy, or time without --export-profile")
    return TrtRunner(engine, cuda_graph=False, profiler=make_trt_profiler(import_tensorrt(), times))
