"""``rtdeploy doctor``: what is installed, what each command needs, and how to get what is missing.

Informational only: it never fails. Optional libraries (TensorRT, CUDA bindings) are imported inside
``try`` so a broken install shows up as a line in the report, not as a crash.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import logging
import os
import platform
import sys
from dataclasses import asdict, dataclass, field

from rtdeploy.machine import cpu_model

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
        cuda_devices: CUDA devices (name, capability, memory) as torch, cuda-python or pycuda sees them.
        commands: command -> list of :class:`Requirement`.
    """

    python: dict
    platform: dict
    packages: dict[str, str | None]
    problems: dict[str, str] = field(default_factory=dict)
    onnxruntime_providers: list[str] = field(default_factory=list)
    torch_cuda: str | None = None
    cuda_devices: list[dict] = field(default_factory=list)
    commands: dict[str, list[Requirement]] = field(default_factory=dict)

    def missing(self, command: str) -> list[Requirement]:
        """The unmet requirements of ``command``."""
        return [r for r in self.commands.get(command, []) if not r.ok]

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        d = asdict(self)
        d["commands"] = {c: {"ready": not self.missing(c), "requirements": [asdict(r) for r in reqs]} for c, reqs in self.commands.items()}
        return d


def diagnose() -> DoctorReport:
    """Look at the installation; never raises for a missing or broken optional library."""
    report = DoctorReport(
        python={"version": platform.python_version(), "executable": sys.executable},
        platform={"system": platform.platform(), "machine": platform.machine(), "cpu": cpu_model(), "cores": os.cpu_count()},
        packages={},
    )
    for dist, module in (("rtdeploy", "rtdeploy"), ("torch", "torch"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime"),
                         ("numpy", "numpy"), ("pillow", "PIL"), ("click", "click"), ("tqdm", "tqdm"),
                         ("matplotlib", "matplotlib"), ("tensorrt", "tensorrt"), ("cuda-python", "cuda"), ("pycuda", "pycuda")):
        report.packages[dist] = _probe(dist, module, report.problems)
    report.onnxruntime_providers = _ort_providers(report)
    report.cuda_devices = _cuda_devices(report)
    report.commands = _requirements(report)
    return report


def _probe(dist: str, module: str, problems: dict) -> str | None:
    """The installed version of ``dist`` if its module imports; records why not in ``problems``."""
    version = _dist_version(dist, module)
    if version is None:
        return None
    if module in ("tensorrt", "cuda", "pycuda"):  # optional and able to fail on missing native libraries
        try:
            importlib.import_module(module)
        except Exception as e:  # an installed package whose shared libraries do not load
            problems[dist] = f"installed but not importable: {str(e).splitlines()[0][:160] if str(e) else type(e).__name__}"
            return None
    return version


def _dist_version(dist: str, module: str) -> str | None:
    names = {"tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-cu13"), "onnxruntime": ("onnxruntime", "onnxruntime-gpu")}
    for name in names.get(dist, (dist,)):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            continue
    # Installed outside pip (JetPack's TensorRT, a system package): ask the module itself.
    if module in ("tensorrt", "pycuda") and importlib.util.find_spec(module) is not None:
        try:
            return str(getattr(importlib.import_module(module), "__version__", "unknown"))
        except Exception:
            return None
    return None


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
    """CUDA devices seen by torch; with a CPU build of torch, by cuda-python or pycuda instead."""
    devices: list[dict] = []
    if report.packages.get("torch") is not None:
        devices = _guarded(report, "torch.cuda", _torch_devices, report)
    if not devices and report.packages.get("cuda-python") is not None:
        devices = _guarded(report, "cuda-python", _cudart_devices)
    if not devices and report.packages.get("pycuda") is not None:
        devices = _guarded(report, "pycuda", _pycuda_devices)
    return devices


def _guarded(report: DoctorReport, label: str, fn, *args) -> list[dict]:
    try:
        return fn(*args)
    except Exception as e:  # a driver or library problem is a finding, not a crash
        report.problems[label] = f"cannot query CUDA devices: {str(e).splitlines()[0][:160] if str(e) else type(e).__name__}"
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


def _cudart_devices() -> list[dict]:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0:
        return []
    devices = []
    for i in range(count):
        _, prop = cudart.cudaGetDeviceProperties(i)
        name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
        devices.append({"index": i, "name": name, "capability": f"{prop.major}.{prop.minor}",
                        "memory_gib": round(prop.totalGlobalMem / 2**30, 1), "seen_by": "cuda-python"})
    return devices


def _pycuda_devices() -> list[dict]:
    import pycuda.driver as drv

    drv.init()
    devices = []
    for i in range(drv.Device.count()):
        d = drv.Device(i)
        major, minor = d.compute_capability()
        devices.append({"index": i, "name": d.name(), "capability": f"{major}.{minor}",
                        "memory_gib": round(d.total_memory() / 2**30, 1), "seen_by": "pycuda"})
    return devices


def _requirements(r: DoctorReport) -> dict[str, list[Requirement]]:
    has = lambda name: r.packages.get(name) is not None  # noqa: E731
    core = [Requirement(n, has(n), CORE) for n in ("torch", "onnx", "onnxruntime", "numpy", "pillow")]
    trt_fix = (r.problems["tensorrt"] + "; " if "tensorrt" in r.problems else "") + GPU_EXTRA
    trt = [
        Requirement("tensorrt", has("tensorrt"), trt_fix),
        Requirement("cuda-python or pycuda", has("cuda-python") or has("pycuda"), GPU_EXTRA),
        Requirement("a CUDA GPU", bool(r.cuda_devices), "needs an NVIDIA GPU and its driver (check nvidia-smi)"),
    ]
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
