"""Real TensorRT Python bindings without TensorRT: fetch the wheels, compile stub libraries, and
give each release its own subprocess environment.

    python -m tests.trt_stubs.harness fetch          # download every wheel into the cache (CI)
    python -m tests.trt_stubs.harness env 11.4.0.106 # print the environment for one release

The cache is ``$RTDEPLOY_TRT_WHEELS`` or ``~/.cache/rtdeploy/trt-wheels``. Each release is
imported in its own process: all are the module ``tensorrt_bindings`` and each needs its own
``LD_LIBRARY_PATH`` (the stubs of its major version).

8.5.3 (JetPack 5.1, the last JetPack for Jetson Xavier) has no bindings wheel for this Python: it runs
on the real 8.6.1 bindings narrowed to the names NVIDIA's 8.5.3 sources declare (``surface``, see
surface.py and derive_surface.py), paired with cuda-bindings 11.8.7, the CUDA 11 binding of JetPack 5.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CSRC = HERE / "csrc"


@dataclass(frozen=True)
class Release:
    """One TensorRT release under test and the CUDA bindings it is paired with."""

    version: str
    wheel: str  # pip requirement of the bindings wheel
    major: int
    cuda: str  # pip requirement of the matching cuda-bindings wheel
    surface: str | None = None  # a derived API surface (file in this folder) applied to the bindings of ``wheel``


RELEASES = {
    "8.5.3": Release("8.5.3", "tensorrt-bindings==8.6.1", 8, "cuda-bindings==11.8.7", surface="surface-8.5.3.json"),
    "8.6.1": Release("8.6.1", "tensorrt-bindings==8.6.1", 8, "cuda-bindings==12.9.10"),
    "10.3.0": Release("10.3.0", "tensorrt-cu12-bindings==10.3.0", 10, "cuda-bindings==12.9.10"),
    "10.13.3.9": Release("10.13.3.9", "tensorrt-cu12-bindings==10.13.3.9", 10, "cuda-bindings==12.9.10"),
    "10.16.1.11": Release("10.16.1.11", "tensorrt-cu12-bindings==10.16.1.11", 10, "cuda-bindings==12.9.10"),  # the last 10.x on PyPI
    "11.4.0.106": Release("11.4.0.106", "tensorrt-cu13-bindings==11.4.0.106", 11, "cuda-bindings==13.5.0"),
}
EXTRA_WHEELS = ("cuda-pathfinder==1.9.0",)  # needed by cuda-bindings to import

# (library file, C source) per major version.
STUBS = {
    8: (("libnvinfer.so.8", "nvinfer.c"), ("libnvinfer_plugin.so.8", "nvinfer_plugin.c"),
        ("libnvonnxparser.so.8", "nvonnxparser.c"), ("libnvparsers.so.8", "nvparsers.c")),
    10: (("libnvinfer.so.10", "nvinfer.c"), ("libnvinfer_plugin.so.10", "nvinfer_plugin.c"), ("libnvonnxparser.so.10", "nvonnxparser.c")),
    11: (("libnvinfer.so.11", "nvinfer.c"), ("libnvinfer_plugin.so.11", "nvinfer_plugin.c"), ("libnvonnxparser.so.11", "nvonnxparser.c")),
}


class Unavailable(Exception):
    """The bindings cannot be had here (no network, no gcc, another platform); tests skip with this reason."""


def cache_dir() -> Path:
    """``$RTDEPLOY_TRT_WHEELS`` or ``~/.cache/rtdeploy/trt-wheels``."""
    return Path(os.environ.get("RTDEPLOY_TRT_WHEELS") or Path.home() / ".cache" / "rtdeploy" / "trt-wheels")


def _wheel_name(requirement: str) -> tuple[str, str]:
    name, version = requirement.split("==")
    return name.replace("-", "_").lower(), version


def find_wheel(requirement: str, folder: Path) -> Path | None:
    """The cached wheel for ``name==version`` (any compatible tag), or None."""
    name, version = _wheel_name(requirement)
    hits = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{name}-{version}-"))
    return hits[0] if hits else None


def fetch(requirement: str, folder: Path) -> Path:
    """The wheel for ``requirement``, downloaded with pip into ``folder`` when not cached.

    Raises:
        Unavailable: pip could not get it (offline, or no wheel for this Python/platform).
    """
    folder.mkdir(parents=True, exist_ok=True)
    hit = find_wheel(requirement, folder)
    if hit is not None:
        return hit
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", str(folder), requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"pip download {requirement} failed: {e}") from e
    hit = find_wheel(requirement, folder)
    if proc.returncode != 0 or hit is None:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"pip download {requirement} failed (offline, or no wheel for Python {sys.version_info.major}."
                          f"{sys.version_info.minor} on this platform): {last}")
    return hit


def unpack(wheel: Path, folder: Path) -> Path:
    """Unpack ``wheel`` once into ``folder/<wheel stem>``; returns that directory (a sys.path entry)."""
    dest = folder / wheel.stem
    marker = dest / ".unpacked"
    if not marker.exists():
        tmp = folder / f".{wheel.stem}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp)
        (tmp / ".unpacked").write_text(wheel.name)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    return dest


def compile_stubs(major: int, folder: Path) -> Path:
    """Compile the stub libraries of ``major`` into ``folder/<major>`` with gcc; returns that folder.

    Raises:
        Unavailable: no gcc.
    """
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise Unavailable("no C compiler (gcc) to build the TensorRT stub libraries")
    out = folder / str(major)
    out.mkdir(parents=True, exist_ok=True)
    for lib, source in STUBS[major]:
        target = out / lib
        if target.exists() and target.stat().st_mtime >= (CSRC / source).stat().st_mtime:
            continue
        tmp = out / f".{lib}.{os.getpid()}"
        proc = subprocess.run([gcc, "-shared", "-fPIC", f"-Wl,-soname,{lib}", "-o", str(tmp), str(CSRC / source)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise Unavailable(f"gcc could not build {lib}: {proc.stderr.strip()[:200]}")
        os.replace(tmp, target)
    return out


def prepare(release: Release, folder: Path | None = None) -> dict[str, str]:
    """Everything one release needs; returns the environment for its subprocess.

    Raises:
        Unavailable: a wheel cannot be fetched or the stubs cannot be compiled.
    """
    folder = folder or cache_dir()
    paths = [unpack(fetch(req, folder), folder / "unpacked") for req in (release.wheel, release.cuda, *EXTRA_WHEELS)]
    stubs = compile_stubs(release.major, folder / "stubs")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(stubs), env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    env["RTDEPLOY_CONFORMANCE_RELEASE"] = release.version
    if release.surface:
        env["RTDEPLOY_CONFORMANCE_SURFACE"] = str(HERE / release.surface)
    env["PYTHONNOUSERSITE"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def fetch_all(folder: Path | None = None) -> None:
    """Download every wheel the conformance tests use (what CI runs before the tests)."""
    folder = folder or cache_dir()
    wanted = dict.fromkeys(req for release in RELEASES.values() for req in (release.wheel, release.cuda, *EXTRA_WHEELS))
    for req in wanted:
        print(fetch(req, folder))


if __name__ == "__main__":
    if sys.argv[1:2] == ["fetch"]:
        fetch_all()
    elif sys.argv[1:2] == ["env"] and len(sys.argv) == 3:
        env = prepare(RELEASES[sys.argv[2]])
        for key in ("PYTHONPATH", "LD_LIBRARY_PATH", "RTDEPLOY_CONFORMANCE_RELEASE", "RTDEPLOY_CONFORMANCE_SURFACE"):
            if key in env:
                print(f"export {key}={env[key]}")
    else:
        sys.exit("usage: python -m tests.trt_stubs.harness fetch | env RELEASE")
