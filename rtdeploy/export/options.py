"""The options of ``rtdeploy export`` and ``rtdeploy import``, each declared once (:mod:`rtdeploy.options`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import ExportError, opt
from rtdeploy.models.options import Checkpoint, ModelChoice
from rtdeploy.options import READS, WRITES, JsonReport, Options, Progress, option

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 13, 20, 17
PREPROCESS = ("imagenet", "cifar", "none")
LAYOUTS = ("NCHW",)


def _opset(value) -> int:
    from rtdeploy.checks import is_ascii_int

    if isinstance(value, bool) or not (isinstance(value, int) or is_ascii_int(value)) or not MIN_OPSET <= int(value) <= MAX_OPSET:
        raise ExportError(f"--opset {value} is not supported; accepted: {MIN_OPSET}..{MAX_OPSET} (TensorRT 8.6 reads up to 17, the default)")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class ExportConfig(JsonReport, Progress, Checkpoint, ModelChoice, Options):
    """What to export: ``rtdeploy export``'s options (the model ones declared in
    :class:`~rtdeploy.models.options.ModelChoice` and :class:`~rtdeploy.models.options.Checkpoint`)."""

    error = ExportError

    opset: int = option(DEFAULT_OPSET, "--opset", type=int, parse=_opset, help="ONNX opset, 13..20 (TensorRT 8.6 reads up to 17).")
    batch: int | str = option("dynamic", "--batch", parse=lambda v: parse_batch(v), help="'dynamic' batch axis, or a fixed batch size.")
    output: Path | None = option(None, "-o", "--output", type=Path, path=WRITES, changes_output=False,
                                 help="ONNX file to write [default: <model>.onnx].")

    def writes(self) -> list[tuple[str, Path]]:
        from rtdeploy.files import manifest_path

        out = export_path(self)
        return [("output", out), ("output", manifest_path(out))]


def parse_batch(value: str | int) -> int | str:
    """``"dynamic"`` or a positive batch size.

    Raises:
        ExportError: anything else.
    """
    if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isascii() and value.isdigit()):
        if int(value) >= 1:
            return int(value)
    elif value == "dynamic":
        return value
    raise ExportError(f"--batch {value!r} is not accepted; give 'dynamic' or a positive integer such as 1 or 32")


def export_path(cfg: ExportConfig) -> Path:
    """Where ``cfg`` writes: ``cfg.output``, or ``<name>.onnx`` (``resnet50.onnx``) in the working folder."""
    return Path(cfg.output) if cfg.output is not None else Path(f"{cfg.model_name}.onnx")


def _floats(name: str):
    def parse(value):
        return parse_floats(value, opt(name)) if isinstance(value, str) else tuple(value)

    return parse


@dataclass(frozen=True, kw_only=True)
class ImportConfig(JsonReport, Options):
    """What to import, and how its inputs are made: ``rtdeploy import``'s options, each declared once.

    ``preprocess``: ``imagenet`` (resize the short side to size*256/224, center crop, ImageNet
    mean/std), ``cifar`` (resize to size, ImageNet mean/std, as the CIFAR ResNets here), ``none``
    (resize to size, pixels in [0, 1]); ``mean``/``std`` override its normalization.
    """

    error = ExportError

    model: Path = option(argument=True, type=Path, path=READS, changes_output=False, help="The ONNX file to adopt.")
    preprocess: str | None = option(None, "--preprocess", choices=PREPROCESS,
                                    help="How images become inputs: imagenet (resize, center crop, ImageNet mean/std), cifar "
                                         "(resize, ImageNet mean/std), none (pixels in [0, 1]).")
    size: int | None = option(None, "--size", type=int, help="Input height = width [default: the model's].")
    mean: tuple[float, ...] | None = option(None, "--mean", metavar="R,G,B", parse=_floats("mean"),
                                            help="Per-channel mean of pixels in [0, 1] (overrides --preprocess).")
    std: tuple[float, ...] | None = option(None, "--std", metavar="R,G,B", parse=_floats("std"),
                                           help="Per-channel std (overrides --preprocess).")
    layout: str = option("NCHW", "--layout", choices=LAYOUTS, help="Input layout.")
    classes: int | None = option(None, "--classes", type=int, help="Output classes the model must have [default: its output size].")
    name: str | None = option(None, "--name", help="Model name in reports and derived files [default: the file's stem].")
    output: Path | None = option(None, "-o", "--output", type=Path, path=WRITES, changes_output=False,
                                 help="Where the adopted ONNX lies [default: in place; <stem>.imported.onnx when it must be rewritten].")

    def writes(self) -> list[tuple[str, Path]]:
        from rtdeploy.files import manifest_path

        return [("output", manifest_path(self.output))] if self.output is not None and not self.in_place else []

    @property
    def in_place(self) -> bool:
        """True when the adopted file is the given one (its manifest is written beside it)."""
        return self.output is None or Path(self.output).resolve() == Path(self.model).resolve()

    def updates(self) -> list[Path]:
        return [Path(self.model)] if self.in_place else []


def parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """``"0.485,0.456,0.406"`` -> a tuple of floats (None stays None).

    Raises:
        ExportError: not comma-separated numbers.
    """
    if text is None:
        return None
    try:
        return tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise ExportError(f"{option} {text!r} is not accepted; give comma-separated numbers, e.g. 0.485,0.456,0.406") from None
