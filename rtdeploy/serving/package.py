"""``rtdeploy package``: one configuration, checked before any work, then the Triton repository entry."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import ENGINE_SUFFIXES
from rtdeploy.lineage import CPU_TARGET, derived_path, precision_tag
from rtdeploy.errors import PackageError, RtDeployError, opt
from rtdeploy.library_errors import stage_boundary
from rtdeploy.options import FLAG, READS, Options, option

log = logging.getLogger(__name__)

KINDS = ("gpu", "cpu")


def parse_preferred_batch(value) -> tuple[int, ...]:
    """``"4,8,16"`` (or a sequence of sizes) -> (4, 8, 16); None -> ().

    Raises:
        PackageError: not a list of positive integers.
    """
    from rtdeploy.checks import comma_list, is_ascii_int

    if value is None:
        return ()
    if not isinstance(value, str):
        return tuple(value)
    items = comma_list(value, "--preferred-batch", PackageError, example="4,8")
    sizes = tuple(int(v) for v in items) if all(is_ascii_int(v) for v in items) else ()
    if not sizes or any(s < 1 for s in sizes):
        raise PackageError(f"--preferred-batch {value!r} is not accepted; give positive batch sizes, comma-separated, such as 4,8")
    return sizes


@dataclass(frozen=True, kw_only=True)
class PackageConfig(Options):
    """What to package, and how: ``rtdeploy package``'s options, each declared once here."""

    error = PackageError

    artifact: Path = option(argument=True, type=Path, path=READS, changes_output=False,
                            help="An rtdeploy ONNX model or TensorRT engine (.onnx, .plan, .engine) with its manifest.")
    triton: Path = option(flags=("--triton",), type=Path, changes_output=False, help="Model repository folder to write into.")
    name: str | None = option(None, "--name", help="Triton model name [default: from the file name, e.g. resnet50_int8].")
    version: int = option(1, "--version", type=int, help="Model version folder.")
    max_batch: int | None = option(None, "--max-batch", type=int,
                                   help="max_batch_size [default: the engine profile's max, or 32 for a dynamic ONNX].")
    preferred_batch: tuple[int, ...] = option((), "--preferred-batch", parse=parse_preferred_batch, show_default=False,
                                              help="Preferred batch sizes for dynamic batching, e.g. 4,8,16.")
    max_queue_delay_us: int = option(100, "--max-queue-delay-us", type=int, help="Dynamic batching queue delay.")
    instances: int = option(1, "--instances", type=int, help="Model instances per device.")
    kind: str = option("gpu", "--kind", choices=KINDS, help="Instance kind (ONNX models can serve on CPU).")
    force: bool = option(False, "--force", kind=FLAG, changes_output=False,
                         help="Replace an existing model folder of the same name (holding no other version).")

    def rules(self) -> None:
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

    def model_folder(self) -> Path:
        """``triton/<name>``: the folder the command writes (and, with ``force``, replaces)."""
        from rtdeploy.serving.triton import check_model_name, default_model_name

        name = check_model_name(self.name) if self.name is not None else default_model_name(Path(self.artifact))
        return Path(self.triton) / name

    def writes(self) -> list[tuple[str, Path]]:
        folder = self.model_folder()
        return [("triton", folder / "config.pbtxt"), ("triton", folder / str(self.version))]

    def replaces(self) -> list[tuple[str, Path, frozenset[str]]]:
        """``--force`` replaces the model folder whole: everything in it but what this command writes is lost."""
        return [("force", self.model_folder(), frozenset({"config.pbtxt", str(self.version)}))] if self.force else []


def cpu_form_of(artifact: Path) -> Path | None:
    """The INT8 model made for onnxruntime's CPU kernels from the same FP32 parent as ``artifact`` (a
    TensorRT-placed INT8 model), when one lies beside it; else None."""
    try:
        manifest = _int8_manifest(artifact)
        if manifest is None or manifest.quantization.target != "tensorrt":
            return None
        sibling = derived_path(manifest.parent.file, precision_tag("int8", CPU_TARGET))
        other = _int8_manifest(sibling)
    except (RtDeployError, OSError):
        return None
    if other is None or other.parent.sha256 != manifest.parent.sha256:
        return None
    return sibling if other.quantization.target == CPU_TARGET else None


def _int8_manifest(path: Path):
    """The typed INT8 manifest beside ``path``, or None (no file, no manifest, another kind)."""
    from rtdeploy.manifests import Int8Manifest, read_artifact

    manifest = read_artifact(path, required=False) if Path(path).is_file() else None
    return manifest if isinstance(manifest, Int8Manifest) else None


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
    manifest = _int8_manifest(artifact)
    if manifest is None or manifest.quantization.target != "tensorrt":
        return artifact
    cpu = cpu_form_of(artifact)
    if cpu is not None:
        log.warning("packaging %s (the INT8 form onnxruntime's CPU kernels fuse) instead of %s (placed for TensorRT) for "
                    "--kind cpu", cpu.name, artifact.name)
        return cpu
    log.warning("%s is placed for TensorRT and runs slower than FP32 on onnxruntime CPU; for CPU serving make "
                "`rtdeploy quantize %s --int8 --target onnxruntime-cpu` and package that", artifact.name,
                manifest.parent.path)
    return artifact
