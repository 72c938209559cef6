"""``rtdeploy validate``'s options, each declared once (:mod:`rtdeploy.options`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import DataError
from rtdeploy.options import KEYED, MULTIPLE, READS, JsonReport, Options, Progress, When, option

# The tolerance options: --tol-<limit> per limit of :class:`Tolerance`, folded into one dict.
TOLERANCE_FLAGS = {
    "cosine": ("--tol-cosine", "Min mean cosine similarity."),
    "cosine_worst": ("--tol-cosine-worst", "Min cosine similarity of the worst sample."),
    "max_abs": ("--tol-max-abs", "Max absolute error as a fraction of the reference output range."),
    "max_rel": ("--tol-max-rel", "Max relative error (not checked by default)."),
    "top1": ("--tol-top1", "Min top-1 agreement (0..1)."),
    "top5": ("--tol-top5", "Min top-5 agreement (0..1)."),
    "accuracy_drop": ("--tol-accuracy-drop", "Max top-1 accuracy drop in points when labels are given."),
}


@dataclass(frozen=True, kw_only=True)
class ValidateConfig(JsonReport, Progress, Options):
    """What to validate and how: ``rtdeploy validate``'s options, each declared once here.

    ``samples``: random samples (default 8); with ``images``, also the size of a seeded image
    subset (default: all images). ``held_out``: ``images`` is a calibration set, and only its part
    held out from calibration is compared on. ``reference``: None (automatic), ``torch``, ``onnx`` (the parent
    ONNX) or an ONNX path. ``tolerances``: overrides of the precision's default limits, by
    :class:`Tolerance` field name.
    """

    error = DataError

    model: Path = option(argument=True, type=Path, path=READS, changes_output=False,
                         help="The candidate: an ONNX with its manifest, or a TensorRT engine (.engine/.plan).")
    images: Path | None = option(None, "--images", type=Path, path=READS, changes_output=False,
                                 help="Folder of images (class subfolders give labels) or .npy/.npz tensors to compare on (FP32/FP16: besides random inputs; INT8: alone).")
    # Set by `rtdeploy run` without --images (API only): `images` is the calibration set, and only
    # the part calibration holds out for validation (rtdeploy.data.split) is compared on; a set too
    # small to split falls back to random inputs, and the report says so.
    held_out: bool = option(False, cli=False, applies=(When("images", lambda v: v is not None, says="--images"),),
                            help="Compare on the part of the images held out from calibration only (rtdeploy.data.split).")
    samples: int | None = option(None, "--samples", type=int,
                                 help="Random inputs to compare [default: 8]; with --images also a seeded subset of that many images [default: all].")
    batch: int = option(8, "--batch", type=int, help="Batch size fed to both models.")
    reference: str | None = option(None, "--reference", metavar="torch|onnx|PATH",
                                   help="Reference: the PyTorch model, the parent ONNX, or an ONNX file [default: parent ONNX if any, else PyTorch].")
    tolerances: dict = option(kind=KEYED, factory=dict, type=float, keys=TOLERANCE_FLAGS, help="Tolerance overrides, by limit.")
    seed: int = option(0, "--seed", type=int, help="Seed of the random inputs and the image subset.")
    providers: tuple[str, ...] = option(("cpu",), "--provider", kind=MULTIPLE, parse=tuple,
                                        applies=(When("model", lambda m: Path(m).suffix.lower() not in (".engine", ".plan"),
                                                      message="{given} does nothing with {decider}: an engine runs on TensorRT, "
                                                              "not onnxruntime; drop {option}"),),
                                        help="onnxruntime execution provider for the candidate (cpu, cuda, tensorrt).")

    def reads(self) -> list[Path]:
        return [Path(self.reference)] if self.reference is not None and self.reference not in ("torch", "onnx") else []
