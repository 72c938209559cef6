"""What is validated against what: the candidate artifact, its manifest, and its reference runner.

- FP32 ONNX from ``export``: the reference is the PyTorch model rebuilt from the manifest.
- FP32 ONNX from ``import`` (no PyTorch source): onnxruntime on the imported file itself, so the
  check is that it runs, stays finite and (with labelled ``--images``) how accurate it is.
- FP16 / INT8 ONNX (manifest with a ``parent``): the parent ONNX in onnxruntime.
- TensorRT engine (``.engine`` / ``.plan``): the ONNX it was built from, in onnxruntime.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.artifacts import ENGINE_SUFFIXES, check_matches_manifest
from rtdeploy.files import manifest_path, not_a_file, sha256_file
from rtdeploy.errors import ArtifactError
from rtdeploy.manifests import ArtifactManifest, EngineManifest, OnnxManifest, read_artifact, read_onnx
from rtdeploy.models.metadata import ModelMeta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """The candidate artifact and what its (typed) manifest says about it."""

    path: Path
    manifest: ArtifactManifest
    meta: ModelMeta
    precision: str
    is_engine: bool

    @property
    def quantized_for(self) -> str | None:
        """The INT8 target (``tensorrt``, ``onnxruntime-cpu``) an INT8 ONNX was made for; None otherwise."""
        quantization = getattr(self.manifest, "quantization", None)
        return getattr(quantization, "target", None) if self.precision == "int8" else None


def load_target(path: str | Path) -> Target:
    """Read and check the candidate artifact's manifest.

    Raises:
        ArtifactError: missing file, not an ONNX model, no or stale manifest, unknown precision.
    """
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"model {p} {not_a_file(p)}; give an .onnx file made by `rtdeploy export` (or an .engine)")
    is_engine = p.suffix.lower() in ENGINE_SUFFIXES
    if not manifest_path(p).exists():
        if not is_engine:
            _check_onnx_parses(p)
        raise ArtifactError(
            f"{p} has no manifest ({manifest_path(p).name} beside it), so rtdeploy cannot tell which model it holds; "
            "make it with `rtdeploy export` (or the stage that made it) and keep the .json beside it, "
            f"or adopt an ONNX made elsewhere with `rtdeploy import {p.name} --preprocess imagenet|cifar|none`"
        )
    manifest = read_artifact(p)
    check_matches_manifest(p, manifest.sha256, remedy="re-run the stage that made it")
    if manifest.model is None:
        raise ArtifactError(f"{manifest_path(p).name} names no model (its ONNX had no rtdeploy manifest); build it from the ONNX "
                            "that `rtdeploy export` or `quantize` wrote")
    return Target(p, manifest, manifest.model, manifest.precision, is_engine)


def _check_onnx_parses(path: Path) -> None:
    from rtdeploy.artifacts import load_onnx_graph

    if load_onnx_graph(path) is None:
        raise ArtifactError(f"{path} is not an ONNX model (it does not parse as one); give an .onnx file made by `rtdeploy export`")


def candidate_runner(target: Target, providers: tuple[str, ...] = ("cpu",)):
    """The runner for the candidate: onnxruntime, or TensorRT for an engine."""
    if target.is_engine:
        return _trt_runner(target.path)
    return _ort(target.path, providers)


def _ort(path: Path, providers: tuple[str, ...] = ("cpu",)):
    """onnxruntime on ``path``, identified by the file's bytes and the providers (outputs shareable);
    its threads sleep between ops (a validation pass is throughput, and the other model's pass or
    other work may want the cores)."""
    from rtdeploy.runners.ort_runner import OrtRunner

    runner = OrtRunner(path, providers=providers, spinning=False)
    runner.identity = f"onnxruntime:{','.join(runner.providers)}:{sha256_file(path)}"
    return runner


def _trt_runner(path: Path):
    # rtdeploy.trt imports tensorrt lazily: a missing TensorRT is the runner's MissingDependency on entry.
    from rtdeploy.trt.runner import TrtRunner

    return TrtRunner(path)


def is_own_reference(target: Target, choice: str | None = None) -> bool:
    """True for an imported FP32 model with no reference asked for: it is the reference itself."""
    return choice is None and isinstance(target.manifest, OnnxManifest) and target.meta.family == "imported"


def reference_runner(target: Target, choice: str | None = None):
    """The reference runner for ``target``.

    Args:
        target: the candidate.
        choice: None (automatic: the parent ONNX when the manifest has one, else PyTorch),
            ``torch``, ``onnx`` (the parent ONNX), or the path of an ONNX model.

    Raises:
        ArtifactError: the asked-for reference does not exist or no longer matches the manifest.
    """
    parent = None if isinstance(target.manifest, OnnxManifest) else target.manifest.parent.file
    if is_own_reference(target, choice):
        return _ort(target.path)
    if choice == "torch" or (choice is None and parent is None):
        return _torch_reference(target)
    if choice in (None, "onnx"):
        if parent is None:
            raise ArtifactError(f"{target.path.name} has no parent ONNX in its manifest; use --reference torch or --reference PATH")
        _check_parent(target, parent)
        return _ort(parent)
    path = Path(choice)
    if not path.is_file():
        raise ArtifactError(f"reference {choice!r} is neither 'torch', 'onnx' nor an existing ONNX file")
    if path.resolve() == target.path.resolve() or sha256_file(path) == sha256_file(target.path):
        raise ArtifactError(f"reference {choice} is the model itself (the same bytes), so the comparison would always pass; "
                            "give --reference torch, onnx or another model's path")
    return _ort(path)


def _check_parent(target: Target, parent: Path) -> None:
    if not parent.is_file():
        raise ArtifactError(f"the parent of {target.path.name}, {parent}, is gone; restore it, or use --reference torch or --reference PATH")
    if sha256_file(parent) != target.manifest.parent.sha256:
        raise ArtifactError(f"{parent} changed since {target.path.name} was made from it (sha256 differs); rebuild {target.path.name} or pass --reference PATH")


def _torch_reference(target: Target):
    from rtdeploy.validate.reference import torch_model_from_manifest
    from rtdeploy.runners.torch_runner import TorchRunner

    if target.meta.family == "imported":
        raise ArtifactError(f"{target.path.name} was imported (`rtdeploy import`), so there is no PyTorch model to compare with; "
                            "drop --reference (onnxruntime on the imported FP32 file) or give --reference PATH")
    found = target.manifest
    if isinstance(found, EngineManifest):  # the weights are recorded by the ONNX the engine was built from
        if not found.parent.file.is_file():
            raise ArtifactError(f"the ONNX {target.path.name} was built from ({found.parent.path}) is gone, and with it the record of "
                                "the weights; use --reference onnx or --reference PATH")
        found = read_onnx(found.parent.file)
    model = torch_model_from_manifest(found)
    runner = TorchRunner(model, target.meta.input_name, target.meta.output_name)
    runner.identity = f"torch:{found.sha256}"  # the model the manifest of those ONNX bytes describes
    return runner
