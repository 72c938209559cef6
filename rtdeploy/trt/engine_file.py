"""Loading an engine: check its manifest against this machine first, then deserialize.

A TensorRT plan only runs on the TensorRT release it was built with (unless built
version-compatible) and on GPUs of the compute capability it was built for (unless built
hardware-compatible). Deserializing a mismatched plan gives an opaque error or none at all, so the
manifest written beside the plan is checked first, and a mismatch says what was built, what is
here, and the exact command to rebuild.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rtdeploy.artifacts import check_matches_manifest, read_manifest
from rtdeploy.files import not_a_file
from rtdeploy.errors import ArtifactError, EngineError, MissingDependency
from rtdeploy.manifests import EngineManifest, typed
from rtdeploy.trt.device_memory import DeviceInfo
from rtdeploy.trt.features import Features
from rtdeploy.trt.loader import trt_version

log = logging.getLogger(__name__)


def rebuild_command(manifest: EngineManifest | None, path: Path) -> str:
    """The command that rebuilds the engine at ``path`` (from its manifest when it has one)."""
    if manifest is not None:
        return manifest.rebuild_command
    return f"rtdeploy build-engine --onnx MODEL.onnx -o {path}"


def this_platform() -> str:
    """``linux-x86_64``, ``linux-aarch64``, ``windows-x86_64``: what a plan is tied to besides TensorRT and GPU."""
    import platform
    import sys

    osname = "windows" if sys.platform.startswith("win") else "linux" if sys.platform.startswith("linux") else sys.platform
    machine = platform.machine().lower() or "unknown"
    return f"{osname}-{ {'amd64': 'x86_64', 'arm64': 'aarch64'}.get(machine, machine)}"


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for p in str(version).split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def version_problem(built_version: str, runtime_version: str, version_compatible: bool) -> str | None:
    """Why a plan from TensorRT ``built_version`` cannot load on ``runtime_version``, or None.

    TensorRT's rule (engine-compatibility page of the 10.x/11.x developer guide): a plan loads only
    on the release that built it; a ``VERSION_COMPATIBLE`` plan also loads on later releases,
    never on earlier ones (10.x plans run on 11.x, not 11.x plans on 10.x).
    """
    if built_version == runtime_version:
        return None
    if version_compatible:
        if _version_tuple(runtime_version) >= _version_tuple(built_version):
            return None
        return (f"TensorRT {built_version} (version-compatible plans run only on that release or later), "
                f"this machine has the earlier TensorRT {runtime_version}")
    return f"TensorRT {built_version}, this machine has TensorRT {runtime_version} (a plan loads only on the release that built it)"


def compatibility_problem(manifest: EngineManifest | dict[str, Any], *, runtime_version: str, device: DeviceInfo | None,
                          platform: str | None = None) -> str | None:
    """Why an engine with ``manifest`` cannot run here, or None when it can.

    Rules (see /docs/tensorrt.md, "Loading"): the TensorRT release must be the one that built the
    plan, or a later one for a version-compatible plan; the platform (OS and CPU architecture)
    must match; the compute capability must match, except that an ``ampere+`` plan runs on any
    compute capability >= 8.0 (and ``same-cc`` on the same compute capability).
    """
    if isinstance(manifest, EngineManifest):
        manifest = manifest.to_dict()
    built = manifest.get("tensorrt", {})
    build = manifest.get("build", {})
    problem = version_problem(str(built.get("version", "?")), runtime_version, bool(build.get("version_compatible")))
    if problem:
        return problem
    built_platform = manifest.get("platform")
    here_platform = platform or this_platform()
    if built_platform and built_platform != here_platform:
        return f"the {built_platform} platform, this machine is {here_platform} (plans are not portable across platforms)"
    if device is None:
        return None
    built_cc = str(manifest.get("device", {}).get("compute_capability", "?"))
    here_cc = device.compute_capability
    if build.get("hardware_compatibility") == "ampere+":
        if _version_tuple(here_cc) < (8, 0):
            return f"hardware compatibility ampere+ (compute >= 8.0), this GPU ({device.name}) has compute {here_cc}"
        return None
    if built_cc != here_cc:
        built_gpu = manifest.get("device", {}).get("name", "?")
        return f"compute capability {built_cc} ({built_gpu}), this GPU ({device.name}) has compute {here_cc}"
    return None


def hardware_compatibility_problem(level: str | None, device: DeviceInfo) -> str | None:
    """Why a build at hardware-compatibility ``level`` cannot be made on ``device``, or None.

    NvInfer.h (``HardwareCompatibilityLevel``): ``kAMPERE_PLUS`` needs an Ampere or newer GPU to
    build on; ``kSAME_COMPUTE_CAPABILITY`` needs Turing or newer.
    """
    cc = _version_tuple(device.compute_capability)
    if level == "ampere+" and cc < (8, 0):
        return (f"--hardware-compatibility ampere+ needs an Ampere or newer GPU to build on (compute >= 8.0), "
                f"but {device.name} has compute {device.compute_capability}; build without it or on an Ampere+ GPU")
    if level == "same-cc" and cc < (7, 5):
        return (f"--hardware-compatibility same-cc needs a Turing or newer GPU to build on (compute >= 7.5), "
                f"but {device.name} has compute {device.compute_capability}; build without it")
    return None


def check_engine_file(path: Path, manifest: dict[str, Any] | None, *, runtime_version: str,
                      device: DeviceInfo | None) -> EngineManifest | None:
    """Everything checkable before deserializing: the file exists, matches its manifest, fits here.

    Args:
        manifest: the manifest as read from ``path.json`` (None: there is none).

    Returns:
        the typed engine manifest (None when there is none).

    Raises:
        ArtifactError: the file is missing, or its manifest is not a complete engine manifest.
        EngineError: the file is empty, truncated or changed, or was built for another TensorRT
            major or compute capability (the message gives the rebuild command).
    """
    if not path.is_file():
        raise ArtifactError(f"engine {path} {not_a_file(path)}; build one with `rtdeploy build-engine`")
    if manifest is not None:
        if manifest.get("kind") != "engine":
            raise ArtifactError(f"{path} has a manifest of kind {manifest.get('kind')!r}, not an engine; give the .engine file build-engine wrote")
        manifest = typed(manifest, path)
    cmd = rebuild_command(manifest, path)
    if path.stat().st_size == 0:
        raise EngineError(f"engine {path} is empty; rebuild it: {cmd}")
    if manifest is None:
        log.warning("%s has no manifest; its TensorRT version and GPU cannot be checked before loading", path)
        return None
    check_matches_manifest(path, manifest.sha256, remedy=f"rebuild it: {cmd}", error=EngineError)
    problem = compatibility_problem(manifest, runtime_version=runtime_version, device=device)
    if problem:
        raise EngineError(f"engine {path.name} was built for {problem}; rebuild it here: {cmd}")
    return manifest


def load_engine(trt, path: str | Path, *, device: DeviceInfo | None, logger=None):
    """Check and deserialize an engine.

    Args:
        trt: the ``tensorrt`` module.
        path: the plan file (its manifest ``path.json`` beside it is read when present).
        device: this machine's GPU (None skips the compute-capability check).
        logger: a ``trt.ILogger`` (default: one from :func:`rtdeploy.trt.builder.make_logger`).

    Returns:
        (engine, manifest or None, runtime): keep the runtime alive as long as the engine.

    Raises:
        ArtifactError, EngineError: see :func:`check_engine_file`; also a file TensorRT cannot
            deserialize (not an engine, truncated, or from another release).
        MissingDependency: TensorRT could not create a runtime (no GPU or driver).
    """
    from rtdeploy.trt.builder import make_logger

    path = Path(path)
    manifest = read_manifest(path, required=False) if path.is_file() else None
    version = trt_version(trt)
    manifest = check_engine_file(path, manifest, runtime_version=version, device=device)
    logger = logger if logger is not None else make_logger(trt)
    version_compatible = bool(manifest is not None and manifest.build.version_compatible)
    try:
        engine, runtime = deserialize_plan(trt, path.read_bytes(), logger=logger, version_compatible=version_compatible,
                                           what=str(path), rebuild=rebuild_command(manifest, path))
    except EngineError as e:
        if manifest is None and Features.detect(trt).engine_host_code_allowed:
            # A version-compatible plan embeds a lean runtime (host code) that TensorRT runs only when the application
            # opts in (NvInferRuntime.h: engine_host_code_allowed, default False; trtexec opts in on --versionCompatible).
            # rtdeploy opts in for plans whose manifest records the flag; a plan without one is not trusted to run code.
            raise EngineError(f"{e}; a plan without an rtdeploy manifest is deserialized without host code, so a "
                              "version-compatible plan (trtexec --versionCompatible) fails this way: rebuild it with "
                              "rtdeploy build-engine --version-compatible, whose manifest allows its embedded runtime") from None
        raise
    return engine, manifest, runtime


def deserialize_plan(trt, plan: bytes, *, logger, version_compatible: bool, what: str, rebuild: str):
    """The one way rtdeploy deserializes a plan (after a build, and when loading a file).

    TensorRT's plugins are registered first (``init_libnvinfer_plugins``, as trtexec and Polygraphy
    do), so plans with plugin layers load. A version-compatible plan embeds its own lean runtime
    and TensorRT refuses it unless ``Runtime.engine_host_code_allowed`` is True (default False:
    NvInferRuntime.h; trtexec's sampleEngines.cpp sets it for such plans).

    Returns:
        (engine, runtime): keep the runtime alive as long as the engine.

    Raises:
        EngineError: TensorRT could not deserialize the plan (the message says ``what`` and ``rebuild``).
        MissingDependency: no runtime could be created (no GPU or driver).
    """
    features = Features.detect(trt)
    init_plugins(trt, features, logger)
    runtime = create_runtime(trt, logger)
    if version_compatible:
        if not features.engine_host_code_allowed:
            raise EngineError(f"{what} is a version-compatible plan, but TensorRT {trt_version(trt)} cannot allow its embedded "
                              f"runtime (no Runtime.engine_host_code_allowed); rebuild it here: {rebuild}")
        runtime.engine_host_code_allowed = True
    try:
        engine = runtime.deserialize_cuda_engine(plan)
    except (RuntimeError, TypeError, ValueError) as e:
        log.debug("deserialize_cuda_engine raised %r", e)
        engine = None
    if engine is None:
        errors = getattr(logger, "errors", [])
        said = f": {errors[-1].strip().splitlines()[0][:200]}" if errors else ""
        raise EngineError(f"{what} is not a TensorRT {trt_version(trt)} engine or is truncated (TensorRT could not deserialize it{said}); "
                          f"rebuild it: {rebuild}")
    return engine, runtime


def init_plugins(trt, features, logger) -> None:
    """Register TensorRT's standard plugins (idempotent in TensorRT); a failure is logged, not raised:
    plans without plugin layers load without them."""
    if not features.plugins_init:
        return
    init = trt.init_libnvinfer_plugins
    try:
        init(logger, "")
    except (RuntimeError, TypeError) as e:
        log.warning("TensorRT's plugins could not be registered (%s); plans with plugin layers will not load", e)


def create_runtime(trt, logger):
    """``trt.Runtime(logger)``.

    Raises:
        MissingDependency: TensorRT could not create a runtime (no usable GPU or driver).
    """
    try:
        runtime = trt.Runtime(logger)
    except (TypeError, RuntimeError):
        runtime = None
    if runtime is None:
        raise MissingDependency(f"TensorRT {trt_version(trt)} could not create a runtime: no usable NVIDIA GPU or driver; "
                                "run on a machine with an NVIDIA GPU and driver — `rtdeploy doctor` shows what is missing")
    return runtime
