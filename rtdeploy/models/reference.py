"""The PyTorch model an artifact was made from, rebuilt by name: the reference of ``validate``,
the torch backend of ``bench``, and the model ``export`` exports.

A model without weights is initialised with a fixed seed, so the export and every later rebuild
of it agree bit for bit; a model with weights loads them (``weights_only=True``) and refuses values
no trained network has.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from rtdeploy.errors import ArtifactError, WeightsError
from rtdeploy.models.metadata import ModelMeta

INIT_SEED = 0


def build_torch_model(meta: ModelMeta, weights: str | Path | None):
    """The eval-mode torch model for ``meta`` (built by its registered name): loaded from
    ``weights``, or initialised with seed :data:`INIT_SEED`.

    Raises:
        ModelError: ``meta.name`` is not registered here. WeightsError: the weights do not fit.
    """
    from rtdeploy.models.registry import build
    from rtdeploy.models.weights import load_weights

    with seeded(INIT_SEED):
        model = build(meta)
    if weights is not None:
        load_weights(model, weights, model_name=f"{meta.name} ({meta.num_classes} classes)")
    return model.eval()


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
    meta = manifest.model
    w = manifest.weights
    if w.path is None:
        return build_torch_model(meta, None)
    path = Path(w.path)
    if not path.is_file():
        raise ArtifactError(f"the weights this model was exported from ({path}) are gone; put them back or re-export with --weights")
    if sha256_file(path) != w.sha256:
        raise ArtifactError(f"the weights file {path} changed since export (sha256 differs); re-export with `rtdeploy export --weights {path}`")
    return build_torch_model(meta, path)


def check_weight_values(model, weights: str | Path | None) -> None:
    """Refuse weights no trained network has: NaN or Inf anywhere, or a negative BatchNorm variance
    (the export would fold them into every convolution and the model would output NaN).

    Raises:
        WeightsError: naming the first bad tensor.
    """
    import torch

    source = f"weights {weights}" if weights is not None else "the initialised model"
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{source}: {name!r} holds NaN or Inf; the checkpoint is corrupt or diverged — use another checkpoint")
    for name, module in model.named_modules():
        var = getattr(module, "running_var", None)
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and var is not None and bool((var < 0).any()):
            raise WeightsError(f"{source}: '{name}.running_var' has negative values (min {float(var.min()):.4g}); "
                               "a variance is never negative, so the checkpoint is corrupt — use another checkpoint")


@contextlib.contextmanager
def seeded(seed: int):
    """torch's global generator seeded with ``seed`` inside the block, restored after it."""
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)
