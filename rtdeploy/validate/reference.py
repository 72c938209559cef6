"""The PyTorch model an ONNX artifact was exported from, rebuilt from its manifest: the reference
``validate`` compares an FP32 export with."""

from __future__ import annotations

from pathlib import Path

from rtdeploy.errors import ArtifactError
from rtdeploy.models.reference import build_torch_model


def torch_model_from_manifest(manifest):
    """Rebuild the torch model an ONNX manifest (typed, or the dict of one) was exported from.

    Raises:
        ArtifactError: the manifest is not an ONNX model's, or the weights file it records is gone or has changed.
    """
    from rtdeploy.files import sha256_file
    from rtdeploy.manifests import OnnxManifest, PrecisionManifest, typed

    if isinstance(manifest, dict):
        manifest = typed(manifest, manifest.get("artifact", "the model"))
    if not isinstance(manifest, (OnnxManifest, PrecisionManifest)):
        raise ArtifactError(f"{manifest.artifact} is not an ONNX model made by rtdeploy (kind {manifest.kind}); give its ONNX")
    w = manifest.weights
    if w.path is None:
        return build_torch_model(manifest.model, None)
    path = Path(w.path)
    if not path.is_file():
        raise ArtifactError(f"the weights this model was exported from ({path}) are gone; put them back or re-export with --weights")
    if sha256_file(path) != w.sha256:
        raise ArtifactError(f"the weights file {path} changed since export (sha256 differs); re-export with `rtdeploy export --weights {path}`")
    return build_torch_model(manifest.model, path)
