"""Runner over an ONNX model in onnxruntime (CPU by default; CUDA/TensorRT providers when installed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rtdeploy.errors import ArtifactError, MissingDependency
from rtdeploy.runners.base import Runner

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class OrtRunner(Runner):
    """Runs an ONNX file with onnxruntime.

    Args:
        path: the ONNX model.
        providers: execution providers by alias (``cpu``, ``cuda``, ``tensorrt``) or full name.
        threads: intra-op threads (0: onnxruntime's default).
    """

    def __init__(self, path: str | os.PathLike, *, providers: tuple[str, ...] = ("cpu",), threads: int = 0):
        super().__init__()
        self.path = Path(path)
        self.providers = [PROVIDER_ALIASES.get(p, p) for p in providers]
        self.threads = threads
        self.session = None
        self._dtype = np.dtype(np.float32)
        short = ",".join(p.removesuffix("ExecutionProvider") for p in self.providers)
        self.name = f"onnxruntime[{short}]"

    def _activate(self) -> None:
        import onnxruntime as ort

        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise MissingDependency(
                f"onnxruntime has no {', '.join(missing)} here (available: {', '.join(ort.get_available_providers())}); "
                "for CUDA install onnxruntime-gpu in place of onnxruntime (see README, GPU install)"
            )
        if not self.path.is_file():
            raise ArtifactError(f"ONNX model {self.path} does not exist; export one with `rtdeploy export`")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own untyped errors for bad models
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ArtifactError(f"onnxruntime cannot load {self.path}: {first}; check that it is an ONNX model (re-export it)") from e
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._dtype = np.dtype(np.float16) if "float16" in self.session.get_inputs()[0].type else np.dtype(np.float32)

    def _deactivate(self) -> None:
        self.session = None

    def input_dtype(self) -> np.dtype:
        """The numpy dtype of the first input (float16 for an FP16-I/O model); read once at activation."""
        return self._dtype

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {k: np.ascontiguousarray(v, dtype=self._dtype) for k, v in feed.items()}
        outs = self.session.run(self.output_names, feed)
        return {n: np.asarray(o) for n, o in zip(self.output_names, outs)}
