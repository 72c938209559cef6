"""Loading a user's weights file into a model: untrusted input, checked key by key."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from rtdeploy.errors import WeightsError, first_line

log = logging.getLogger(__name__)

_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")


def read_state_dict(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and return its tensors by name.

    Accepts a bare state dict or a dict holding one under ``state_dict``/``model``/...; strips a
    ``module.`` prefix left by DataParallel.

    Raises:
        WeightsError: missing, unreadable, truncated, or not a state dict of tensors.
    """
    import torch

    p = Path(path)
    if not p.exists():
        raise WeightsError(f"weights file {p} does not exist; give the path of a .pth/.pt/.th checkpoint")
    if p.is_dir():
        raise WeightsError(f"weights path {p} is a directory; give the checkpoint file inside it")
    try:
        with warnings.catch_warnings():  # torch warns on stderr about pickle protocols: not the user's concern
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # untrusted bytes make the unpickler raise almost anything (KeyError, struct.error ...)
        raise WeightsError(
            f"cannot read weights {p}: {_load_failure(e)}; re-download it, or re-save it from a trusted session "
            "with torch.save(model.state_dict(), path)"
        ) from e
    state = _find_state_dict(obj)
    if state is None:
        raise WeightsError(f"weights {p} hold no state dict of tensors (found {type(obj).__name__}); save one with torch.save(model.state_dict(), path)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_failure(e: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words."""
    text = str(e)
    if "Weights only load failed" in text:  # torch's long advice says to load unsafely: name only the refused item
        detail = text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation", 1)[0]
        return f"it holds Python objects or code that safe loading (weights_only=True) refuses ({' '.join(detail.split())[:120]})"
    return f"not a loadable PyTorch checkpoint, or truncated ({first_line(e)[:160]})"


def _find_state_dict(obj) -> dict | None:
    import torch

    if isinstance(obj, dict):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        for key in _STATE_DICT_KEYS:
            if key in obj:
                found = _find_state_dict(obj[key])
                if found is not None:
                    return found
    return None


def load_weights(model, path: str | os.PathLike, *, model_name: str = "the model") -> None:
    """Load the checkpoint at ``path`` into ``model`` strictly.

    Raises:
        WeightsError: unreadable file, or keys/shapes that differ from the model (the first
            mismatching key is named with expected vs found shape).
    """
    state = read_state_dict(path)
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name.endswith("num_batches_tracked") and name not in state:
            # Checkpoints saved before PyTorch 0.4.1 lack this counter; eval-mode BN never reads it.
            state[name] = tensor
            continue
        if name not in state:
            raise WeightsError(f"weights {path} do not fit {model_name}: missing key {name!r} (expected shape {tuple(tensor.shape)}); check --depth and --num-classes")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise WeightsError(
                f"weights {path} do not fit {model_name}: {name!r} has shape {tuple(state[name].shape)}, "
                f"expected {tuple(tensor.shape)}; check --depth, --num-classes and --in-channels"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise WeightsError(f"weights {path} do not fit {model_name}: unexpected key {extra[0]!r} ({len(extra)} extra in all); check --depth and --variant")
    model.load_state_dict(state, strict=True)
