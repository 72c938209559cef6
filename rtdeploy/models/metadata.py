"""Per-model metadata that every later stage reads (preprocessing, shapes, tensor names)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class ModelMeta:
    """What a stage needs to know about a model without building it.

    Attributes:
        family: ``imagenet`` or ``cifar`` (registry models), ``imported`` (``rtdeploy import``).
        depth: number of weighted layers (18, 50, 56 ...); None for a model that is not a ResNet.
        name: ``resnet50``, ``resnet56``.
        num_classes: size of the output.
        in_channels: input channels.
        image_size: height = width of the network input.
        resize: shorter side the image is resized to before the center crop (None: resize straight
            to ``image_size``).
        mean, std: per-channel normalization of an RGB image scaled to [0, 1].
        input_name, output_name: ONNX / engine tensor names.
        variant: ``v1.5`` (stride on the 3x3 conv, torchvision) or ``v1`` (paper, stride on the 1x1);
            ``option-a`` for the CIFAR models.
        gmacs: multiply-accumulates per image at ``image_size``, in billions (for plots and ratios).
        layout: the input's memory layout; ``NCHW`` (the only one the stages feed).
    """

    family: str
    depth: int | None
    name: str
    num_classes: int
    in_channels: int
    image_size: int
    resize: int | None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    variant: str = "v1.5"
    gmacs: float | None = field(default=None, compare=False)
    layout: str = "NCHW"

    def input_shape(self, batch: int | str = "batch") -> tuple:
        """The NCHW input shape, with ``batch`` as the first dimension."""
        return (batch, self.in_channels, self.image_size, self.image_size)

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelMeta":
        """Inverse of :meth:`to_dict`; unknown keys are ignored so newer manifests still load."""
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("mean", "std"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)
