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

from rtdeploy.artifacts import read_manifest, sha256_file
from rtdeploy.errors import ArtifactError, EngineError, MissingDependency
from rtdeploy.manifests import EngineManifest, typed
from rtdeploy.trt.device_memory import DeviceInfo
from rtdeploy.trt.loader import major_of, trt_version

log = logging.getLogger(__name__)


def rebuild_command(manifest: EngineManifest | None, path: Path) -> str:
    """The command that rebuilds the engine at ``path`` (from its manifest when it has one)."""
    if manifest is not None:
        return manifest.rebuild_command
    return f"rtdeploy build-engine --onnx MODEL.onnx -o {path}"


def compatibility_problem(manifest: EngineManifest, *, runtime_version: str, device: DeviceInfo | None) -> str | None:
    """Why an engine with ``manifest`` cannot run here, or None when it can.

    Rules: the TensorRT major must match, except that a version-compatible plan also loads on a
    later major; the compute capability must match, except that an ``ampere+`` plan runs on any
    compute capability >= 8.0.
    """
    build = manifest.build
    built_version = manifest.tensorrt.version
    built_major, here_major = major_of(built_version), major_of(runtime_version)
    if built_major != here_major and not (build.version_compatible and here_major > built_major):
        return f"TensorRT {built_version}, this machine has TensorRT {runtime_version}"
    if built_version != runtime_version and not build.version_compatible:
        log.warning("engine built with TensorRT %s, running on %s; TensorRT may refuse it", built_version, runtime_version)
    built_cc = manifest.device.compute_capability
    if device is None:
        return None
    here_cc = device.compute_capability
    if build.hardware_compatibility == "ampere+":
        if major_of(here_cc) < 8:
            return f"hardware compatibility ampere+ (compute >= 8.0), this GPU ({device.name}) has compute {here_cc}"
        return None
    if built_cc != here_cc:
        built_gpu = manifest.device.name
        return f"compute capability {built_cc} ({built_gpu}), this GPU ({device.name}) has compute {here_cc}"
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
        raise ArtifactError(f"engine {path} does not exist; build one with `rtdeploy build-engine`")
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
    if manifest.bytes != path.stat().st_size or manifest.sha256 != sha256_file(path):
        raise EngineError(f"engine {path} does not match its manifest (truncated or replaced since it was built); rebuild it: {cmd}")
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
    runtime = create_runtime(trt, logger)
    if manifest is not None and manifest.build.version_compatible and hasattr(runtime, "engine_host_code_allowed"):
        # A version-compatible plan carries its own lean runtime, which must be allowed to run.
        runtime.engine_host_code_allowed = True
    try:
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
    except (RuntimeError, TypeError, ValueError) as e:
        log.debug("deserialize_cuda_engine raised %r", e)
        engine = None
    if engine is None:
        errors = getattr(logger, "errors", [])
        said = f": {errors[-1].strip().splitlines()[0][:200]}" if errors else ""
        raise EngineError(f"{path} is not a TensorRT {version} engine or is truncated (TensorRT could not deserialize it{said}); "
                          f"rebuild it: {rebuild_command(manifest, path)}")
    return engine, manifest, runtime


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
