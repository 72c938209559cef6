"""Finding TensorRT and reporting what is (not) there.

``import_tensorrt`` is the one place that imports the ``tensorrt`` module. The pip wheels and
JetPack install it as ``tensorrt``; the bare bindings wheels (``tensorrt-cu12-bindings`` ...) as
``tensorrt_bindings``. Both expose the same API, so either is accepted.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from rtdeploy.errors import MissingDependency, RtDeployError

log = logging.getLogger(__name__)

INSTALL_HINT = ('install it with pip install "rtdeploy[gpu]" (TensorRT and cuda-python for CUDA 12, which every driver from R525 '
                'runs; "rtdeploy[gpu-cu13]" on CUDA 13 drivers: rtdeploy doctor says which fits), or use JetPack\'s TensorRT on Jetson')


def import_tensorrt():
    """The ``tensorrt`` module.

    Raises:
        MissingDependency: neither ``tensorrt`` nor ``tensorrt_bindings`` can be imported (not
            installed, or its shared libraries are missing); the message says how to get it.
    """
    errors: list[BaseException] = []
    for name in ("tensorrt", "tensorrt_bindings"):
        try:
            return importlib.import_module(name)
        except (ImportError, OSError) as e:
            errors.append(e)
    # A module that is there but whose libraries fail to load says more than "not installed".
    real = [e for e in errors if not (isinstance(e, ModuleNotFoundError) and e.name in ("tensorrt", "tensorrt_bindings"))]
    what = f"import tensorrt failed: {_short(real[0])}" if real else "not installed"
    raise MissingDependency(f"TensorRT is not available ({what}); {INSTALL_HINT}")


def trt_version(trt) -> str:
    """The release string of an imported ``tensorrt`` module, e.g. ``10.3.0``."""
    return str(getattr(trt, "__version__", "0"))


def installed_version() -> str | None:
    """The release of the importable TensorRT (e.g. ``10.3.0``), or None when none imports."""
    try:
        return trt_version(import_tensorrt())
    except MissingDependency:
        return None


def availability() -> dict[str, Any]:
    """What this machine offers for TensorRT, for ``rtdeploy doctor``; never raises.

    Returns:
        ``{"ok": bool, "tensorrt": {...}, "cuda": {...}, "gpu": {...}, "hint": str}``: each part has
        ``available`` and either its version/details or ``reason`` (one line). ``hint`` says what to
        do when ``ok`` is False.
    """
    report: dict[str, Any] = {"tensorrt": _tensorrt_part(), **_cuda_and_gpu_parts()}
    report["ok"] = all(report[k]["available"] for k in ("tensorrt", "cuda", "gpu"))
    reasons = [report[k].get("reason") for k in ("tensorrt", "cuda", "gpu") if not report[k]["available"]]
    report["hint"] = "" if report["ok"] else next((r for r in reasons if r), INSTALL_HINT)
    return report


def _cuda_and_gpu_parts() -> dict[str, dict[str, Any]]:
    from rtdeploy.trt.device_memory import CudaRuntime, load_cudart

    try:
        cudart = load_cudart()
    except RtDeployError as e:
        return {"cuda": {"available": False, "reason": str(e)},
                "gpu": {"available": False, "reason": "not checked: the CUDA bindings are missing"}}
    cuda = {"available": True, "binding": getattr(cudart, "__name__", "cudart")}
    try:
        mem = CudaRuntime(cudart)
        gpu = {"available": True, **mem.device_info().to_dict()}
    except RtDeployError as e:
        gpu = {"available": False, "reason": str(e)}
    return {"cuda": cuda, "gpu": gpu}


def _tensorrt_part() -> dict[str, Any]:
    try:
        trt = import_tensorrt()
    except RtDeployError as e:
        return {"available": False, "reason": str(e)}
    return {"available": True, "version": trt_version(trt), "module": trt.__name__}


def _short(error: BaseException | None) -> str:
    if error is None:
        return "not installed"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:160]
