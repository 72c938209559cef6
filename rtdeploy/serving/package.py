"""``rtdeploy package``: one configuration, checked before any work, then the Triton repository entry."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import CPU_TARGET, ENGINE_SUFFIXES, derived_path, precision_tag, read_manifest
from rtdeploy.errors import PackageError, RtDeployError, opt
from rtdeploy.library_errors import stage_boundary

log = logging.getLogger(__name__)

KINDS = ("gpu", "cpu")


@dataclass(frozen=True)
class PackageConfig:
    """What to package, and how (see :func:`rtdeploy.api.package` for each option)."""

    artifact: Path
    triton: Path
    name: str | None = None
    version: int = 1
    max_batch: int | None = None
    preferred_batch: tuple[int, ...] = ()
    max_queue_delay_us: int = 100
    instances: int = 1
    kind: str = "gpu"
    force: bool = False

    def check(self) -> None:
        """Every option rule that needs no file.

        Raises:
            PackageError: the first broken rule, naming the option and what is accepted.
        """
        if self.instances < 1:
            raise PackageError(f"{opt('instances')} {self.instances} is not accepted; give 1 or more")
        if self.kind not in KINDS:
            raise PackageError(f"{opt('kind')} {self.kind!r} is not accepted; give gpu or cpu")
        if self.kind == "cpu" and Path(self.artifact).suffix in ENGINE_SUFFIXES:
            raise PackageError(f"a TensorRT engine runs only on a GPU; use {opt('kind')} gpu, or package the ONNX model for CPU serving")


def cpu_form_of(artifact: Path) -> Path | None:
    """The INT8 model made for onnxruntime's CPU kernels from the same FP32 parent as ``artifact`` (a
    TensorRT-placed INT8 model), when one lies beside it; else None."""
    try:
        manifest = read_manifest(artifact, required=False) or {}
        q = manifest.get("quantization") or {}
        parent = manifest.get("parent") or {}
        if manifest.get("kind") != "onnx-int8" or q.get("target", "tensorrt") != "tensorrt" or not parent.get("path"):
            return None
        sibling = derived_path(Path(parent["path"]), precision_tag("int8", CPU_TARGET))
        other = read_manifest(sibling, required=False) if sibling.is_file() else None
    except (RtDeployError, OSError):
        return None
    if not other or (other.get("parent") or {}).get("sha256") != parent.get("sha256"):
        return None
    return sibling if (other.get("quantization") or {}).get("target") == CPU_TARGET else None


@stage_boundary("package", PackageError)
def package(cfg: PackageConfig) -> Path:
    """Write the Triton model repository entry ``cfg`` describes.

    With ``kind="cpu"``, a TensorRT-placed INT8 model is replaced by its onnxruntime-CPU form when
    one was made from the same parent (said on the log); otherwise a warning says how to make one.

    Returns:
        The model folder ``triton/<name>``.

    Raises:
        PackageError, ArtifactError, OutputError: see :func:`rtdeploy.serving.triton.write_repository`.
    """
    from rtdeploy.serving.triton import write_repository

    cfg.check()
    artifact = Path(cfg.artifact)
    if cfg.kind == "cpu":
        artifact = _prefer_cpu_form(artifact)
    return write_repository(artifact, cfg.triton, name=cfg.name, version=cfg.version, force=cfg.force,
                            max_batch=cfg.max_batch, preferred=tuple(cfg.preferred_batch), instances=cfg.instances,
                            kind=f"KIND_{cfg.kind.upper()}", max_queue_delay_us=cfg.max_queue_delay_us)


def _prefer_cpu_form(artifact: Path) -> Path:
    manifest = read_manifest(artifact, required=False) if artifact.is_file() else None
    q = (manifest or {}).get("quantization") or {}
    if (manifest or {}).get("kind") != "onnx-int8" or q.get("target", "tensorrt") != "tensorrt":
        return artifact
    cpu = cpu_form_of(artifact)
    if cpu is not None:
        log.warning("packaging %s (the INT8 form onnxruntime's CPU kernels fuse) instead of %s (placed for TensorRT) for "
                    "--kind cpu", cpu.name, artifact.name)
        return cpu
    log.warning("%s is placed for TensorRT and runs slower than FP32 on onnxruntime CPU; for CPU serving make "
                "`rtdeploy quantize %s --int8 --target onnxruntime-cpu` and package that", artifact.name,
                (manifest.get("parent") or {}).get("path", "MODEL.onnx"))
    return artifact
