"""The PyTorch model of a registered name: the model ``export`` exports, the torch backend of
``bench``, and (rebuilt from a manifest by :mod:`rtdeploy.validate.reference`) the reference of ``validate``.

A model without weights is initialised with a fixed seed, so the export and every later rebuild
of it agree bit for bit; a model with weights loads them (``weights_only=True``) and refuses values
no trained network has.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from rtdeploy.errors import WeightsError
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
