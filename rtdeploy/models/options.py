"""The model options: which registered model, and the metadata a command may override.

One group (:mod:`rtdeploy.options`) taken by ``summary``, ``export``, ``build-engine`` and ``run``:
``--model NAME`` (``--depth N`` is its alias, ``resnetN``), ``--num-classes``, ``--in-channels``,
``--variant``, ``--image-size``. Where a command can start from a given ONNX instead
(``build-engine --onnx``, ``run --onnx``), these options would be ignored, so they are refused
with it (the mode rule).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from rtdeploy.errors import ModelError, UsageError, opt
from rtdeploy.models.resnet import VARIANTS
from rtdeploy.options import READS, When, option

# The model options do nothing for a given ONNX: it is the model.
WITHOUT_ONNX = When("onnx", None, message="{given} does nothing with {decider}: the ONNX already fixes the model; drop {option}")
ONE_SOURCE = When("onnx", None, error=UsageError,
                  message="give " + opt("depth") + " or " + opt("onnx") + ", not both (got --model/--depth {value} and {decider}; "
                          "--model NAME is the long form of --depth)")


def _model_help() -> str:
    """Model by registered name (rtdeploy.models.list_models()), or the ResNet depth (50: resnet50) [default: resnet50]."""
    from rtdeploy.models.registry import valid_names_text

    return f"Model by name ({valid_names_text()}), or --depth N for resnetN [default: resnet50]."


def _name(value) -> str:
    from rtdeploy.models.registry import get_model

    return get_model(value).name


def _depth(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        from rtdeploy.checks import is_ascii_int

        if not is_ascii_int(value):
            raise ModelError(f"depth {value!r} is not a ResNet depth; give one such as 50")
        value = int(value)
    from rtdeploy.models.resnet import family_of

    family_of(value)
    return value


def _positive(name: str):
    def parse(value):
        from rtdeploy.checks import is_ascii_int

        if isinstance(value, str) and is_ascii_int(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"{opt(name)} {value!r} is not accepted: {name} must be a positive integer")
        return value

    return parse


@dataclass(frozen=True, kw_only=True)
class ModelChoice:
    """Which registered model, and the metadata overrides a command may give."""

    model: str | None = option(None, "--model", "--depth", metavar="NAME|N", parse=_name, help=_model_help, show_default=False,
                               applies=(ONE_SOURCE,))
    depth: int | None = option(50, "--depth", cli=False, parse=_depth,
                               applies=(ONE_SOURCE, When("model", None, message="{given} does nothing with {decider}: the model is "
                                                                                "named; drop {option}")),
                               help="The ResNet depth: the short alias of model='resnet<depth>' (used when model is None).")
    num_classes: int | None = option(None, "--num-classes", type=int, parse=_positive("num_classes"), applies=(WITHOUT_ONNX,),
                                     help="Output classes [default: the model's: 1000 ImageNet, 10 CIFAR].")
    in_channels: int = option(3, "--in-channels", type=int, parse=_positive("in_channels"), applies=(WITHOUT_ONNX,),
                              help="Input channels.")
    variant: str | None = option(None, "--variant", choices=VARIANTS, applies=(WITHOUT_ONNX,),
                                 help="ImageNet ResNet block variant: v1.5 (torchvision, default) or v1 (paper).")
    image_size: int | None = option(None, "--image-size", type=int, parse=_positive("image_size"), applies=(WITHOUT_ONNX,),
                                    help="Input height/width [default: the model's: 224 ImageNet, 32 CIFAR].")

    @property
    def entry(self):
        """The registry entry of ``model`` (or of ResNet-``depth``).

        Raises:
            ModelError: not a registered model.
        """
        from rtdeploy.models.registry import get_model

        return get_model(self.model if self.model is not None else self.depth)

    @property
    def model_name(self) -> str:
        """The registered name of the chosen model."""
        return self.entry.name

    def meta(self):
        """The chosen model's metadata with this command's overrides.

        Raises:
            ModelError: an override the model does not take.
        """
        return self.entry.meta(num_classes=self.num_classes, in_channels=self.in_channels, variant=self.variant,
                               image_size=self.image_size)


def model_choice_of(cfg) -> dict:
    """``cfg``'s model options by field, to pass on (to the export a command makes)."""
    return {f.name: getattr(cfg, f.name) for f in fields(ModelChoice)}


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """The trained weights of the chosen model."""

    weights: Path | None = option(None, "--weights", type=Path, path=READS, changes_output=False, applies=(WITHOUT_ONNX,),
                                  help="Trained checkpoint (.pth/.pt/.th), loaded with weights_only=True [default: seed-0 initialisation].")
