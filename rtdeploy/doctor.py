"""``rtdeploy doctor``: what is installed, what each command needs, and how to get what is missing.

Informational only: it never fails. TensorRT and the CUDA bindings are looked at only through
:func:`rtdeploy.trt.loader.availability` (which never raises), so a broken install shows up as a line
in the report, not as a crash.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import platform
import sys
from dataclasses import asdict, dataclass, field

from rtdeploy.machine import cpu_model
from rtdeploy.options import JsonReport, Options

log = logging.getLogger(__name__)

GPU_EXTRA = 'pip install "rtdeploy[gpu]" (or use JetPack\'s TensorRT on Jetson)'
ORT_GPU = "replace onnxruntime with onnxruntime-gpu: pip uninstall -y onnxruntime && pip install onnxruntime-gpu"
CORE = "pip install rtdeploy (torch, onnx, onnxruntime, numpy, pillow, click, tqdm)"


@dataclass
class Requirement:
    """One thing a command needs and whether it is here."""

    name: str
    ok: bool
    fix: str


@dataclass
class DoctorReport:
    """The environment, the CUDA devices, and per command what is missing.

    Attributes:
        python: Python version and executable.
        platform: OS and machine, CPU model and core count.
        packages: distribution name -> version (None when not installed or not importable).
        problems: package -> why it is installed but not importable.
        onnxruntime_providers: onnxruntime's available execution providers.
        torch_cuda: the CUDA version torch was built with, or None for a CPU build.
        tensorrt: :func:`rtdeploy.trt.loader.availability` (``ok``, ``tensorrt``, ``cuda``, ``gpu``, ``hint``).
        gpu_extra: which install extra fits the NVIDIA driver here (:func:`rtdeploy.trt.driver.advice_here`):
            ``driver_cuda``, ``extra`` (``gpu-cu12``/``gpu-cu13`` or None), ``line``.
        cuda_devices: CUDA devices (name, capability, memory) as torch sees them, or (CPU torch) as cuda-python does.
        commands: command -> list of :class:`Requirement`.
        calibration_photos: the bundled default calibration photos: ``path``, ``images`` (0 when
            the folder is missing from this installation).
    """

    python: dict
    platform: dict
    packages: dict[str, str | None]
    problems: dict[str, str] = field(default_factory=dict)
    onnxruntime_providers: list[str] = field(default_factory=list)
    torch_cuda: str | None = None
    tensorrt: dict = field(default_factory=dict)
    gpu_extra: dict = field(default_factory=dict)
    cuda_devices: list[dict] = field(default_factory=list)
    commands: dict[str, list[Requirement]] = field(default_factory=dict)
    calibration_photos: dict = field(default_factory=dict)

    def missing(self, command: str) -> list[Requirement]:
        """The unmet requirements of ``command``."""
        return [r for r in self.commands.get(command, []) if not r.ok]

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        d = asdict(self)
        d["commands"] = {c: {"ready": not self.missing(c), "requirements": [asdict(r) for r in reqs]} for c, reqs in self.commands.items()}
        return d


@dataclass(frozen=True, kw_only=True)
class DoctorConfig(JsonReport, Options):
    """``rtdeploy doctor``'s one option: ``--json`` (bare: stdout, instead of the tables)."""


def diagnose() -> DoctorReport:
    """Look at the installation; never raises for a missing or broken optional library."""
    report = DoctorReport(
        python={"version": platform.python_version(), "executable": sys.executable},
        platform={"system": platform.platform(), "machine": platform.machine(), "cpu": cpu_model(), "cores": os.cpu_count()},
        packages={},
    )
    for dist in ("rtdeploy", "torch", "onnx", "onnxruntime", "numpy", "pillow", "click", "tqdm", "matplotlib", "tensorrt", "cuda-python"):
        report.packages[dist] = _dist_version(dist)
    report.tensorrt = _trt_availability()
    report.gpu_extra = _gpu_extra()
    _merge_trt_findings(report)
    report.onnxruntime_providers = _ort_providers(report)
    report.cuda_devices = _cuda_devices(report)
    report.commands = _requirements(report)
    report.calibration_photos = _calibration_photos()
    return report


def _calibration_photos() -> dict:
    """Where the bundled calibration photos are (package data) and how many; used without --calib-dir."""
    from rtdeploy.data.sources import list_images
    from rtdeploy.precision.calibration_data import bundled_calib_dir

    folder = bundled_calib_dir()
    return {"path": str(folder), "images": len(list_images(folder)) if folder.is_dir() else 0}


def _dist_version(dist: str) -> str | None:
    """The installed version of ``dist`` per its package metadata; imports nothing."""
    names = {"tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-cu13"),
             "onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "cuda-python": ("cuda-python", "cuda-bindings")}
    for name in names.get(dist, (dist,)):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            continue
    return None


def _trt_availability() -> dict:
    """``rtdeploy.trt.loader.availability()``: TensorRT and the CUDA bindings are imported only there."""
    from rtdeploy.trt import loader

    try:
        return loader.availability()
    except Exception as e:  # it promises not to raise; doctor must not crash if it ever does
        reason = f"cannot check TensorRT: {_first_line(e)}"
        return {"ok": False, "hint": reason, **{k: {"available": False, "reason": reason} for k in ("tensorrt", "cuda", "gpu")}}


def _gpu_extra() -> dict:
    """:func:`rtdeploy.trt.driver.advice_here` (the driver is read there, through libcuda); never raises."""
    from rtdeploy.trt import driver

    try:
        return driver.advice_here().to_dict()
    except Exception as e:  # a courtesy: doctor must not crash on an odd driver library
        return {"driver_cuda": None, "extra": None, "line": f"cannot read the driver's CUDA version: {_first_line(e)}"}


def _merge_trt_findings(report: DoctorReport) -> None:
    """Fold the TensorRT / cuda-python findings into ``packages`` and ``problems``."""
    for dist, part in (("tensorrt", report.tensorrt["tensorrt"]), ("cuda-python", report.tensorrt["cuda"])):
        if part["available"]:
            # Installed outside pip (JetPack's TensorRT): no package metadata, but the module says its version.
            if report.packages.get(dist) is None:
                report.packages[dist] = str(part.get("version", "unknown"))
        elif report.packages.get(dist) is not None:
            report.problems[dist] = f"installed but not usable: {part.get('reason', 'unknown reason')}"


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:160] if str(e) else type(e).__name__


def _ort_providers(report: DoctorReport) -> list[str]:
    if report.packages.get("onnxruntime") is None:
        return []
    try:
        import onnxruntime as ort

        return list(ort.get_available_providers())
    except Exception as e:
        report.problems["onnxruntime"] = f"providers unavailable: {e}"
        return []


def _cuda_devices(report: DoctorReport) -> list[dict]:
    """CUDA devices seen by torch; with a CPU build of torch, the GPU that rtdeploy.trt sees instead."""
    devices: list[dict] = []
    if report.packages.get("torch") is not None:
        devices = _guarded(report, "torch.cuda", _torch_devices, report)
    gpu = report.tensorrt["gpu"]
    if not devices and gpu["available"]:
        devices = [{"index": gpu.get("index", 0), "name": gpu.get("name", "unknown"), "capability": gpu.get("compute_capability", "?"),
                    "memory_gib": round(gpu.get("total_bytes", 0) / 2**30, 1), "seen_by": report.tensorrt["cuda"].get("binding", "cuda-python")}]
    return devices


def _guarded(report: DoctorReport, label: str, fn, *args) -> list[dict]:
    try:
        return fn(*args)
    except Exception as e:  # a driver or library problem is a finding, not a crash
        report.problems[label] = f"cannot query CUDA devices: {_first_line(e)}"
        return []


def _torch_devices(report: DoctorReport) -> list[dict]:
    import torch

    report.torch_cuda = torch.version.cuda
    if not torch.cuda.is_available():
        return []
    devices = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        devices.append({"index": i, "name": p.name, "capability": f"{p.major}.{p.minor}",
                        "memory_gib": round(p.total_memory / 2**30, 1), "seen_by": "torch"})
    return devices


def _requirements(r: DoctorReport) -> dict[str, list[Requirement]]:
    has = lambda name: r.packages.get(name) is not None  # noqa: E731
    core = [Requirement(n, has(n), CORE) for n in ("torch", "onnx", "onnxruntime", "numpy", "pillow")]
    # Exactly what rtdeploy.trt needs to build or run an engine: tensorrt, cuda-python, a GPU it can open.
    extra = r.gpu_extra.get("extra")
    install = f'pip install "rtdeploy[{extra}]" ({r.gpu_extra["line"]})' if extra else r.gpu_extra.get("line") or GPU_EXTRA
    fixes = {"tensorrt": install, "cuda": install, "gpu": "needs an NVIDIA GPU and its driver (check nvidia-smi)"}
    reasons = {part: r.tensorrt[part].get("reason") for part in fixes}
    if not r.tensorrt["cuda"]["available"]:
        reasons["gpu"] = None  # not checked without cuda-python: "not checked" is no fix
    trt = [Requirement(name, r.tensorrt[part]["available"], reasons[part] or fixes[part])
           for name, part in (("tensorrt", "tensorrt"), ("cuda-python", "cuda"), ("a CUDA GPU", "gpu"))]
    ort_cuda = Requirement("onnxruntime CUDAExecutionProvider", "CUDAExecutionProvider" in r.onnxruntime_providers, ORT_GPU)
    return {
        "summary": core[:1],
        "export": core[:3],
        "validate, quantize (onnxruntime CPU)": core,
        "bench (torch, onnxruntime CPU)": core + [Requirement("matplotlib", has("matplotlib"), "pip install matplotlib")],
        "onnxruntime on GPU (--provider cuda)": core + [ort_cuda],
        "build-engine": trt,
        "validate / bench a TensorRT engine": trt,
    }
