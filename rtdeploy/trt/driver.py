"""The NVIDIA driver's CUDA version, read from the driver library itself, and the install extra that fits it.

TensorRT's and cuda-python's pip wheels exist per CUDA major (``tensorrt-cu12``, ``tensorrt-cu13``;
cuda-python 12.x, 13.x), and a CUDA 13 build does not run on a CUDA 12 driver, while a CUDA 12 build runs
on any driver that supports CUDA 12 or later (CUDA Compatibility guide: a driver runs applications built
for its CUDA version and earlier; within a major, minor-version compatibility). ``pip install tensorrt``
resolves to the newest (CUDA 13), unusable on the CUDA 12 drivers of most H100/H200 fleets; so rtdeploy
has one extra per CUDA major (``gpu-cu12``, ``gpu-cu13``, see pyproject.toml) and ``rtdeploy doctor``
says which one fits the driver here.

The driver's version comes from ``cuDriverGetVersion`` in ``libcuda`` (CUDA driver API: "the latest CUDA
version supported by the driver", ``1000 * major + 10 * minor``), loaded with ctypes: it needs neither
cuda-python nor TensorRT, which may be the very things missing.
"""

from __future__ import annotations

import ctypes
import platform
from dataclasses import dataclass
from pathlib import Path

EXTRAS = {12: "gpu-cu12", 13: "gpu-cu13"}  # CUDA major -> rtdeploy extra (pyproject.toml)
FIRST_DRIVER = {12: "R525", 13: "R580"}  # the first Linux driver branch of each CUDA major (CUDA toolkit release notes)
_LIBRARIES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
_JETSON_RELEASE = Path("/etc/nv_tegra_release")  # present on Jetson's L4T (JetPack)


def driver_cuda_version() -> int | None:
    """``cuDriverGetVersion`` (e.g. 12040 for CUDA 12.4), or None when no NVIDIA driver library loads."""
    for name in _LIBRARIES:
        try:
            lib = ctypes.CDLL(name)
            version = ctypes.c_int(0)
            if lib.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value > 0:
                return int(version.value)
        except (OSError, AttributeError):
            continue
    return None


def is_jetson() -> bool:
    """A Jetson board (L4T): TensorRT and CUDA come with JetPack, not from pip."""
    return platform.machine().lower() in ("aarch64", "arm64") and _JETSON_RELEASE.exists()


@dataclass(frozen=True)
class ExtraAdvice:
    """Which install extra fits this machine's driver.

    Attributes:
        driver_cuda: the driver's CUDA version (``"12.4"``), None without a driver.
        extra: ``gpu-cu12`` / ``gpu-cu13``, or None when no pip extra fits (no driver, too old, Jetson).
        line: one line saying what to install and why.
    """

    driver_cuda: str | None
    extra: str | None
    line: str

    def to_dict(self) -> dict:
        return {"driver_cuda": self.driver_cuda, "extra": self.extra, "line": self.line}


def advise(driver: int | None, *, jetson: bool = False) -> ExtraAdvice:
    """The extra for a driver that supports CUDA ``driver`` (``cuDriverGetVersion`` form; None: no driver)."""
    if jetson:
        return ExtraAdvice(_text(driver), None, "Jetson: use JetPack's TensorRT (python3-libnvinfer) and the cuda-python of "
                                                "JetPack's CUDA (JetPack 5: cuda-python 11.8; JetPack 6: 12.x); the pip extras are "
                                                "for x86-64 and Arm servers")
    if driver is None:
        return ExtraAdvice(None, None, "no NVIDIA driver found (libcuda does not load): install the NVIDIA driver, then "
                                       f"pip install \"rtdeploy[gpu-cu12]\" (driver {FIRST_DRIVER[12]}+) or \"rtdeploy[gpu-cu13]\" "
                                       f"(driver {FIRST_DRIVER[13]}+)")
    major = driver // 1000
    if major >= 13:
        return ExtraAdvice(_text(driver), EXTRAS[13], f"the driver supports CUDA {_text(driver)}: pip install \"rtdeploy[gpu-cu13]\" "
                                                      "(\"rtdeploy[gpu-cu12]\" runs on it too)")
    if major == 12:
        return ExtraAdvice(_text(driver), EXTRAS[12], f"the driver supports CUDA {_text(driver)}: pip install \"rtdeploy[gpu-cu12]\" "
                                                      f"(\"rtdeploy[gpu]\" is the same); gpu-cu13 needs a CUDA 13 driver ({FIRST_DRIVER[13]}+)")
    return ExtraAdvice(_text(driver), None, f"the driver supports CUDA {_text(driver)} only; TensorRT's pip wheels need CUDA 12 or "
                                            f"later: update the driver ({FIRST_DRIVER[12]}+), then pip install \"rtdeploy[gpu-cu12]\"")


def advice_here() -> ExtraAdvice:
    """:func:`advise` for this machine; never raises."""
    return advise(driver_cuda_version(), jetson=is_jetson())


def _text(driver: int | None) -> str | None:
    return None if driver is None else f"{driver // 1000}.{driver % 1000 // 10}"
