"""Models by name: the registry of model specs (``resnet50``, ``resnet56`` ...).

Each :class:`ModelSpec` says how to make the model's metadata and how to build it; commands take a
name (``--model resnet50``), and ``--depth 50`` is a short alias of the same name. Adding an
architecture is one module with its ``torch.nn.Module`` plus one entry in :func:`_specs`: export,
validate, quantize, build-engine, bench and run then take it by name.

Models rtdeploy did not make (``rtdeploy import``) are not in the registry: their metadata lives in
their manifest only (family ``imported``), and every stage reads it from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rtdeploy.errors import ModelError
from rtdeploy.models.metadata import ModelMeta

IMPORTED_FAMILY = "imported"


@dataclass(frozen=True)
class ModelSpec:
    """One named model of the registry.

    Attributes:
        name: the registry key (``resnet50``); also the stem of the files made from it.
        family: ``imagenet`` or ``cifar`` (decides the preprocessing and the default sizes).
        description: one line for ``--help`` and error messages.
        meta: ``meta(**overrides) -> ModelMeta`` (num_classes, in_channels, variant, image_size).
        build: ``build(meta) -> torch.nn.Module`` (fresh, eval mode); imports torch lazily.
        depth: the ResNet depth, for the ``--depth`` alias (None for architectures without one).
    """

    name: str
    family: str
    description: str
    meta: Callable[..., ModelMeta]
    build: Callable[[ModelMeta], object]
    depth: int | None = None


def _resnet_spec(depth: int) -> ModelSpec:
    from rtdeploy.models.registry import family_of, model_meta

    family = family_of(depth)
    label = "ImageNet" if family == "imagenet" else "CIFAR-10"
    return ModelSpec(
        name=f"resnet{depth}", family=family, description=f"{label} ResNet-{depth}",
        meta=lambda **kw: model_meta(depth, **kw), build=_build_resnet, depth=depth,
    )


def _build_resnet(meta: ModelMeta):
    from rtdeploy.models.registry import build_model

    return build_model(meta)


def _specs() -> dict[str, ModelSpec]:
    """The registry, name -> spec (made on demand: no work at import time)."""
    from rtdeploy.models.registry import CIFAR_DEPTHS, IMAGENET_DEPTHS

    specs = [_resnet_spec(d) for d in (*IMAGENET_DEPTHS, *CIFAR_DEPTHS)]
    return {s.name: s for s in specs}


def model_names() -> tuple[str, ...]:
    """Every registered name, in registry order."""
    return tuple(_specs())


def valid_names_text() -> str:
    """The valid names, for error messages and --help."""
    specs = _specs().values()
    by_family: dict[str, list[str]] = {}
    for s in specs:
        by_family.setdefault(s.family, []).append(s.name)
    return "; ".join(f"{'ImageNet' if f == 'imagenet' else 'CIFAR-10'} {', '.join(n)}" for f, n in by_family.items())


def get_spec(name: str | int) -> ModelSpec:
    """The spec of a model name (``resnet50``), or of a ResNet depth (``50``, ``"50"``: the alias).

    Raises:
        ModelError: no model has that name or depth (the message lists the valid names).
    """
    specs = _specs()
    key = str(name).strip().lower()
    if key.isdigit():
        from rtdeploy.models.registry import family_of

        family_of(int(key))  # an unknown depth keeps its own message, listing the valid depths
        key = f"resnet{int(key)}"
    if key in specs:
        return specs[key]
    raise ModelError(f"unknown model {name!r}; valid models: {valid_names_text()} (or --depth N for resnetN); "
                     "for an ONNX file made elsewhere use `rtdeploy import FILE.onnx`")


def resolve_depth(model: str | int | None, depth: int | None, default: int | None = 50) -> int | None:
    """The ResNet depth that ``model`` (a name or depth alias) or else ``depth`` names.

    ``model`` wins when both are given; neither gives ``default``.

    Raises:
        ModelError: an unknown name, or a registered model without a depth.
    """
    if model is None:
        return depth if depth is not None else default
    spec = get_spec(model)
    if spec.depth is None:
        raise ModelError(f"model {spec.name} is not a ResNet depth; this command takes a ResNet here")
    return spec.depth


def model_name(model: str | int | None, depth: int | None, default: int | None = 50) -> str:
    """The registry name of ``model`` or else of ``depth`` (``resnet<depth>``), checked."""
    if model is not None:
        return get_spec(model).name
    return get_spec(depth if depth is not None else default).name
