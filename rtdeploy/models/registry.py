"""The model registry: every command takes a model by its registered name.

    from rtdeploy.models import register_model

    @register_model("tinynet", image_size=32, num_classes=10, preprocess="cifar")
    def tinynet(num_classes: int = 10, in_channels: int = 3) -> torch.nn.Module:
        ...

A builder takes ``num_classes`` (and ``in_channels`` when it accepts it) and returns a fresh
``torch.nn.Module``; the metadata keywords say what every stage needs without building it (input
size, classes, preprocessing). ``summary``, ``export``, ``validate`` (the PyTorch reference is
rebuilt by name), ``quantize``, ``build-engine``, ``bench`` (sweeps are keyed by name), ``run``
and ``package`` then take ``--model NAME``. The ResNets are registered the same way
(:func:`rtdeploy.models.resnet.register_resnets`); ``--depth N`` is the alias of ``resnetN``.

The registry is the one piece of process-wide state here, filled only by explicit calls: the
built-in ResNets on first use, then every ``register_model`` a user's code makes. A new process
(each ``rtdeploy`` command) learns user models from plugins (:mod:`rtdeploy.plugins`): the
``rtdeploy.plugins`` entry points of installed packages and the modules named in
``$RTDEPLOY_PLUGINS``, imported on first use. Models rtdeploy did not make (``rtdeploy import``)
are not registered: their metadata lives in their manifest (family ``imported``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from rtdeploy.errors import ModelError
from rtdeploy.models.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMeta

IMPORTED_FAMILY = "imported"
# Preprocessing presets: (mean, std, resize ratio: the short side is resized to size * ratio before
# a center crop; None: resized straight to the input size).
PREPROCESS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD, 256 / 224),
    "cifar": (IMAGENET_MEAN, IMAGENET_STD, None),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), None),
}

_registry: dict[str, "ModelEntry"] = {}


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes:
        name: the registry key (``resnet50``); also the stem of the files made from it.
        builder: ``builder(num_classes=..., [in_channels=...], [variant=...]) -> torch.nn.Module``.
        family: ``imagenet``, ``cifar`` (the ResNets) or ``custom``; reports show it.
        description: one line for ``--help`` and error messages.
        depth: the ResNet depth, for the ``--depth`` alias (None for other architectures).
        defaults: the metadata keywords given at registration.
        make_meta: ``make_meta(**overrides) -> ModelMeta`` for families with their own rules (ResNets).
    """

    name: str
    builder: Callable[..., object]
    family: str = "custom"
    description: str = ""
    depth: int | None = None
    defaults: dict = field(default_factory=dict)
    make_meta: Callable[..., ModelMeta] | None = None

    def meta(self, *, num_classes: int | None = None, in_channels: int | None = None, variant: str | None = None,
             image_size: int | None = None) -> ModelMeta:
        """The model's metadata with the registered defaults for what is not given.

        Raises:
            ModelError: a value the model does not take (a variant of a model without variants,
                other input channels than its builder can make, a non-positive size).
        """
        if self.make_meta is not None:
            return self.make_meta(num_classes=num_classes, in_channels=3 if in_channels is None else in_channels,
                                  variant=variant, image_size=image_size)
        if variant is not None:
            raise ModelError(f"model {self.name} has no variants; drop the variant (it is for the ImageNet ResNets)")
        d = self.defaults
        channels = d["in_channels"] if in_channels is None else in_channels
        if channels != d["in_channels"] and not _accepts(self.builder, "in_channels"):
            raise ModelError(f"model {self.name} takes {d['in_channels']} input channels (its builder has no in_channels); "
                             f"drop the in_channels option or register a builder that takes it")
        for label, value in (("num_classes", num_classes), ("in_channels", channels), ("image_size", image_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ModelError(f"{label} must be a positive integer, got {value!r}")
        size = image_size or d["image_size"]
        mean, std, ratio = d["mean"], d["std"], d["resize_ratio"]
        return ModelMeta(family=self.family, depth=None, name=self.name, num_classes=num_classes or d["num_classes"],
                         in_channels=channels, image_size=size, resize=round(size * ratio) if ratio else None,
                         mean=tuple(mean), std=tuple(std), variant="", gmacs=d.get("gmacs"))

    def build(self, meta: ModelMeta):
        """A freshly initialised model for ``meta``, in eval mode."""
        kwargs: dict = {"num_classes": meta.num_classes}
        if _accepts(self.builder, "in_channels"):
            kwargs["in_channels"] = meta.in_channels
        if self.make_meta is not None and meta.variant:
            kwargs["variant"] = meta.variant if meta.variant in ("v1", "v1.5") else None
        return self.builder(**kwargs).eval()


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def register_model(name: str, *, image_size: int = 224, num_classes: int = 1000, preprocess: str = "imagenet",
                   in_channels: int = 3, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                   gmacs: float | None = None, description: str = "", family: str = "custom", depth: int | None = None,
                   meta: Callable[..., ModelMeta] | None = None) -> Callable[[Callable], Callable]:
    """Register a model builder under ``name`` (a decorator; returns the builder unchanged).

    Args:
        name: the model's name on every command (``--model NAME``); letters, digits, ``_``, ``-``, ``.``.
        image_size: input height = width (default 224).
        num_classes: output classes (default 1000).
        preprocess: ``imagenet`` (resize the short side to size*256/224, center crop, ImageNet
            mean/std), ``cifar`` (resize to size, ImageNet mean/std) or ``none`` (pixels in [0, 1]).
        in_channels: input channels (default 3).
        mean, std: per-channel normalization of pixels in [0, 1], overriding ``preprocess``'s.
        gmacs: multiply-accumulates per image in billions, if known (plots and ratios).
        description: one line for ``--help``.
        family, depth, meta: for families with rules of their own (the ResNets); leave them out.

    Raises:
        ModelError: a bad name, a name already registered to another builder, an unknown preprocess.
    """
    from rtdeploy.checks import model_name

    model_name(name, "register_model name", ModelError)
    if preprocess not in PREPROCESS:
        raise ModelError(f"register_model({name!r}): preprocess {preprocess!r} is not known; accepted: {', '.join(PREPROCESS)}")
    p_mean, p_std, ratio = PREPROCESS[preprocess]
    defaults = {"image_size": image_size, "num_classes": num_classes, "in_channels": in_channels, "preprocess": preprocess,
                "mean": tuple(mean or p_mean), "std": tuple(std or p_std), "resize_ratio": ratio, "gmacs": gmacs}

    def decorate(builder: Callable) -> Callable:
        entry = ModelEntry(name.lower(), builder, family, description or f"{name} ({builder.__module__}.{builder.__name__})",
                           depth, defaults, meta)
        old = _registry.get(entry.name)
        if old is not None and old.builder is not builder and not _same_function(old.builder, builder):
            raise ModelError(f"model {name!r} is already registered (by {old.builder.__module__}); choose another name")
        _registry[entry.name] = entry
        return builder

    return decorate


def _same_function(a: Callable, b: Callable) -> bool:
    """A module imported twice (as a script and as a plugin) registers the same function twice."""
    return (getattr(a, "__module__", None), getattr(a, "__qualname__", None)) == (getattr(b, "__module__", None), getattr(b, "__qualname__", None))


def _entries() -> dict[str, ModelEntry]:
    """The registry, with the built-in ResNets and the plugins' models (loaded on first use)."""
    from rtdeploy.models.resnet import register_resnets
    from rtdeploy.plugins import filled

    return filled(_registry, "resnet50", register_resnets, register_model)


def list_models() -> tuple[str, ...]:
    """Every registered model name: the ResNets first (ImageNet, then CIFAR-10), then the others."""
    return tuple(_entries())


def valid_names_text() -> str:
    """The valid names by family, for error messages and --help."""
    labels = {"imagenet": "ImageNet", "cifar": "CIFAR-10"}
    by_family: dict[str, list[str]] = {}
    for e in _entries().values():
        by_family.setdefault(e.family, []).append(e.name)
    return "; ".join(f"{labels.get(f, f)} {', '.join(n)}" for f, n in by_family.items())


def get_model(name: str | int) -> ModelEntry:
    """The entry of a model name (``resnet50``), or of a ResNet depth (``50``, ``"50"``: the alias).

    Raises:
        ModelError: no model has that name or depth (the message lists the valid names).
    """
    entries = _entries()
    key = str(name).strip().lower()
    if key.isascii() and key.isdigit():
        from rtdeploy.models.resnet import family_of

        family_of(int(key))  # an unknown depth keeps its own message, listing the valid depths
        key = f"resnet{int(key)}"
    if key in entries:
        return entries[key]
    raise ModelError(f"unknown model {name!r}; valid models: {valid_names_text()} (or --depth N for resnetN); "
                     "for an ONNX file made elsewhere use `rtdeploy import FILE.onnx`")


def model_name(model: str | int | None, depth: int | None, default: int | None = 50) -> str:
    """The registry name of ``model`` or else of ``depth`` (``resnet<depth>``), checked."""
    if model is not None:
        return get_model(model).name
    return get_model(depth if depth is not None else default).name


def build(meta: ModelMeta):
    """A freshly initialised model for ``meta`` (by its registered name), in eval mode.

    Raises:
        ModelError: ``meta.name`` is not registered in this process (a user's model whose plugin
            is not installed here).
    """
    return get_model(meta.name).build(meta)
