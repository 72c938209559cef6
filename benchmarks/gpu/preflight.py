"""Check, before anything is timed, every import the GPU kit's steps need; say what to install for what is missing.

    python benchmarks/gpu/preflight.py OUT.json

Writes ``{"checks": {name: {"ok", "detail"}}, "missing": [...], "fix": "..."}`` and prints one line per
check. Never fails: the kit (benchmarks/gpu/kit.py) skips the steps whose checks failed, naming them,
instead of letting them run into their timeouts.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import sys
from pathlib import Path

# check -> how to get it (TensorRT is optional: the kit times torch and runs the CUDA tests without it)
FIXES = {
    "torch-cuda": "a CUDA build of torch matching the driver (the CPU wheel sees no GPU)",
    "rtdeploy": "pip install -e . (from the repository root)",
    "numpy": "pip install -e .", "onnx": "pip install -e .", "onnxruntime": "pip install -e .", "tqdm": "pip install -e .",
    "click": "pip install -e .", "matplotlib": "pip install -e .",
    "pytest": "pip install -e '.[dev]'",
    "cuda-bindings": 'pip install "rtdeploy[gpu]" (cuda-python; rtdeploy doctor says which CUDA major fits the driver)',
    "tensorrt": 'optional: pip install "rtdeploy[gpu]" (the TensorRT tests skip without it)',
}
OPTIONAL = frozenset({"tensorrt"})


def _module(name: str) -> tuple[bool, str]:
    try:
        importlib.import_module(name)
    except Exception as e:  # a broken install is a finding, whatever it raises
        return False, f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    try:
        return True, md.version(name.split(".")[0])
    except md.PackageNotFoundError:
        return True, "imported"


def _torch_cuda() -> tuple[bool, str]:
    ok, detail = _module("torch")
    if not ok:
        return ok, detail
    import torch

    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    return True, f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"


def _rtdeploy() -> tuple[bool, str]:
    for name in ("rtdeploy.bench", "rtdeploy.trt", "rtdeploy.runners.torch_runner"):
        ok, detail = _module(name)
        if not ok:
            return False, f"{name}: {detail}"
    return True, "imported"


def _through_rtdeploy(what: str) -> tuple[bool, str]:
    """cuda-python and TensorRT are imported only by rtdeploy.trt (the project's rule), so ask it."""
    try:
        if what == "cuda-bindings":
            from rtdeploy.trt.device_memory import load_cudart

            return True, getattr(load_cudart(), "__name__", "cudart")
        from rtdeploy.trt.loader import import_tensorrt, trt_version

        return True, trt_version(import_tensorrt())
    except Exception as e:
        return False, str(e).splitlines()[0][:200]


def checks() -> dict[str, dict]:
    found = {"torch-cuda": _torch_cuda(), "rtdeploy": _rtdeploy()}
    for name in ("numpy", "onnx", "onnxruntime", "tqdm", "click", "matplotlib", "pytest"):
        found[name] = _module(name)
    for name in ("cuda-bindings", "tensorrt"):
        found[name] = _through_rtdeploy(name)
    return {name: {"ok": ok, "detail": detail} for name, (ok, detail) in found.items()}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python benchmarks/gpu/preflight.py OUT.json", file=sys.stderr)
        return 2
    found = checks()
    missing = [n for n, c in found.items() if not c["ok"] and n not in OPTIONAL]
    record = {"checks": found, "missing": missing, "fix": "; ".join(f"{n}: {FIXES[n]}" for n in missing)}
    Path(args[0]).write_text(json.dumps(record, indent=2) + "\n")
    for name, c in found.items():
        fix = "" if c["ok"] or FIXES[name].split(" (")[0] in c["detail"] else f" -> {FIXES[name]}"
        print(f"{'ok  ' if c['ok'] else 'MISS'} {name}: {c['detail']}{fix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
