"""The machine this runs on: CPU, cores, memory, load, GPU, driver and library versions.

Nothing here imports a heavy library: versions come from package metadata, and the GPU is described
by torch only when torch already sees CUDA, otherwise by ``nvidia-smi`` when it exists.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import platform
import shutil
import subprocess
from pathlib import Path

LIBRARIES = ("rtdeploy", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "numpy", "tensorrt", "cuda-python", "matplotlib")


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _meminfo(key: str) -> int | None:
    """One ``/proc/meminfo`` entry in bytes, or None where there is none."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def available_memory() -> int | None:
    """Memory this process may use, in bytes: MemAvailable (``/proc/meminfo``), else the total; None
    when unknown."""
    available = _meminfo("MemAvailable")
    if available is not None:
        return available
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), or what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    """Total memory in GiB (``/proc/meminfo``), or None when unknown."""
    total = _meminfo("MemTotal")
    return round(total / 2**30, 1) if total is not None else None


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape the numbers (absent ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    return versions


def cuda_device_visible() -> bool:
    """True when an NVIDIA GPU is visible to this process (via torch, or the driver's device nodes)."""
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            return True
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists() and any(Path("/dev").glob("nvidia[0-9]*"))


def gpu_info() -> dict | None:
    """Name, driver, memory and CUDA version of GPU 0, or None without a GPU."""
    if not cuda_device_visible():
        return None
    info: dict = {}
    smi = shutil.which("nvidia-smi")
    if smi:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
            name, driver, mem = [p.strip() for p in out.split(",")[:3]]
            info.update(name=name, driver=driver, memory_gib=round(float(mem) / 1024, 1))
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info.setdefault("name", props.name)
            info.setdefault("memory_gib", round(props.total_memory / 2**30, 1))
            info["compute_capability"] = f"{props.major}.{props.minor}"
            info["cuda_runtime"] = torch.version.cuda
    return info or {"name": "unknown NVIDIA GPU"}


def describe(device: str) -> dict:
    """The environment record of a benchmark, taken at its start (``load_average_end`` is filled later).

    Args:
        device: ``cpu`` or ``cuda``; the GPU is described only for ``cuda``.
    """
    return {
        "os": platform.platform(),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": memory_gib(),
        "load_average_start": load_average(),
        "load_average_end": None,
        "gpu": gpu_info() if device == "cuda" else None,
        "versions": library_versions(),
    }


@contextlib.contextmanager
def torch_threads(threads: int):
    """Run the body with torch's intra-op threads set to ``threads`` and restore the caller's setting
    after it (torch's setting is process-wide). ``threads <= 0``: leave it alone (torch not imported)."""
    if threads <= 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
