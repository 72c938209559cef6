"""The ResNet family: depth -> family, metadata and builder, registered as ``resnet<depth>``.

Depths of the two families do not overlap, so ``--depth`` alone names a model (``resnet<depth>``).
An unknown depth is an error that lists the valid depths of each family. Each depth is one entry of
the model registry (:func:`register_resnets`), registered as any user's architecture is.
"""

from __future__ import annotations

from rtdeploy.errors import ModelError
from rtdeploy.models.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMeta

IMAGENET_DEPTHS = (18, 34, 50, 101, 152)
CIFAR_DEPTHS = (20, 32, 44, 56, 110)
VARIANTS = ("v1.5", "v1")

# Multiply-accumulates per image (billions) at the default input size, as published for these
# architectures; tests check them against the counts that `summary` measures.
GMACS = {18: 1.81, 34: 3.66, 50: 4.09, 101: 7.80, 152: 11.51, 20: 0.041, 32: 0.069, 44: 0.098, 56: 0.126, 110: 0.253}


def valid_depths_text() -> str:
    """The valid depths of each family, for error messages and --help."""
    imagenet = "/".join(map(str, IMAGENET_DEPTHS))
    cifar = "/".join(map(str, CIFAR_DEPTHS))
    return f"ImageNet ResNet {imagenet}; CIFAR-10 ResNet {cifar}"


def family_of(depth: int) -> str:
    """``imagenet`` or ``cifar`` for a valid depth.

    Raises:
        ModelError: the depth belongs to no family.
    """
    if depth in IMAGENET_DEPTHS:
        return "imagenet"
    if depth in CIFAR_DEPTHS:
        return "cifar"
    raise ModelError(f"unknown depth {depth!r}; valid depths: {valid_depths_text()}")


def model_meta(
    depth: int,
    *,
    num_classes: int | None = None,
    in_channels: int = 3,
    variant: str | None = None,
    image_size: int | None = None,
) -> ModelMeta:
    """Metadata of the ResNet of ``depth``, with the family's defaults for anything not given.

    Args:
        depth: 18/34/50/101/152 (ImageNet) or 20/32/44/56/110 (CIFAR-10).
        num_classes: output classes (ImageNet 1000, CIFAR 10 by default).
        in_channels: input channels (3 by default).
        variant: ``v1.5`` (default) or ``v1`` for the ImageNet family; CIFAR models are ``option-a``.
        image_size: input height and width (224 / 32 by default); smaller sizes make quick tests.

    Raises:
        ModelError: unknown depth or variant, or a non-positive size.
    """
    family = family_of(depth)
    for label, value in (("num_classes", num_classes), ("in_channels", in_channels), ("image_size", image_size)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ModelError(f"{label} must be a positive integer, got {value!r}")
    if family == "imagenet":
        variant = variant or "v1.5"
        if variant not in VARIANTS:
            raise ModelError(f"unknown variant {variant!r}; accepted: {', '.join(VARIANTS)}")
        size = image_size or 224
        return ModelMeta(
            family="imagenet", depth=depth, name=f"resnet{depth}", num_classes=num_classes or 1000,
            in_channels=in_channels, image_size=size, resize=round(size * 256 / 224),
            mean=IMAGENET_MEAN, std=IMAGENET_STD, variant=variant, gmacs=_scaled_gmacs(depth, size, 224),
        )
    if variant not in (None, "option-a"):
        raise ModelError(f"variant {variant!r} is for ImageNet ResNets; CIFAR ResNet-{depth} has only option-a shortcuts")
    size = image_size or 32
    return ModelMeta(
        family="cifar", depth=depth, name=f"resnet{depth}", num_classes=num_classes or 10,
        in_channels=in_channels, image_size=size, resize=None,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, variant="option-a", gmacs=_scaled_gmacs(depth, size, 32),
    )


def _scaled_gmacs(depth: int, size: int, default: int) -> float:
    return round(GMACS[depth] * (size / default) ** 2, 3)


def build_model(meta: ModelMeta):
    """A freshly initialised ``torch.nn.Module`` in eval mode for ``meta``."""
    if meta.family == "imagenet":
        from rtdeploy.models.imagenet import ImageNetResNet

        model = ImageNetResNet(meta.depth, num_classes=meta.num_classes, in_channels=meta.in_channels, variant=meta.variant)
    else:
        from rtdeploy.models.cifar import CifarResNet

        model = CifarResNet(meta.depth, num_classes=meta.num_classes, in_channels=meta.in_channels)
    return model.eval()


def register_resnets(register) -> None:
    """Register ``resnet<depth>`` for every depth of both families with ``register`` (the
    registry's :func:`~rtdeploy.models.registry.register_model`)."""
    for depth in (*IMAGENET_DEPTHS, *CIFAR_DEPTHS):
        family = family_of(depth)
        label = "ImageNet" if family == "imagenet" else "CIFAR-10"
        register(f"resnet{depth}", meta=lambda depth=depth, **kw: model_meta(depth, **kw), family=family, depth=depth,
                 description=f"{label} ResNet-{depth}")(_builder(depth))


def _builder(depth: int):
    def build(num_classes: int, in_channels: int = 3, variant: str | None = None):
        return build_model(model_meta(depth, num_classes=num_classes, in_channels=in_channels, variant=variant))

    build.__name__ = f"resnet{depth}"
    return build
