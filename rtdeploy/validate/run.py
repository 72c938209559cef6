"""``validate``: compare a candidate runner with a reference runner on random inputs and images."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from rtdeploy.errors import ArtifactError, DataError
from rtdeploy.options import KEYED, MULTIPLE, READS, JsonReport, Options, Progress, When, option
from rtdeploy.validate.compare import OutputStats, check
from rtdeploy.validate.report import SetReport, ValidationReport
from rtdeploy.validate.targets import candidate_runner, load_target, reference_runner
from rtdeploy.validate.tolerances import Tolerance, check_limit, tolerance_for

log = logging.getLogger(__name__)

DEFAULT_RANDOM_SAMPLES = 8  # one batch; each sample compares every logit, and --images adds real data


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
    subset (default: all images). ``reference``: None (automatic), ``torch``, ``onnx`` (the parent
    ONNX) or an ONNX path. ``tolerances``: overrides of the precision's default limits, by
    :class:`Tolerance` field name.
    """

    error = DataError

    model: Path = option(argument=True, type=Path, path=READS, changes_output=False,
                         help="The candidate: an ONNX with its manifest, or a TensorRT engine (.engine/.plan).")
    images: Path | None = option(None, "--images", type=Path, path=READS, changes_output=False,
                                 help="Folder of images (class subfolders give labels) or .npy/.npz tensors, compared besides random inputs.")
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


def validate_model(cfg: ValidateConfig) -> ValidationReport:
    """Compare ``cfg.model`` with its reference; the report says whether it is within tolerance.

    Raises:
        ArtifactError: the model or its reference cannot be read.
        DataError: the images cannot be used.
        MissingDependency: an engine was given and TensorRT is not available.
    """
    from rtdeploy.data import SyntheticSource, open_source
    from rtdeploy.data.sources import check_labels

    from rtdeploy.checks import check_memory, seed, whole

    cfg.check()
    whole(cfg.batch, "--batch", DataError, minimum=1)
    if cfg.samples is not None:
        whole(cfg.samples, "--samples", DataError, minimum=1)
    seed(cfg.seed, "--seed", DataError)
    for name, value in cfg.tolerances.items():  # before the model is read: a bad limit fails at once
        if value is not None and name in Tolerance.__dataclass_fields__:
            check_limit(name, value)
    target = load_target(cfg.model)
    tol = tolerance_for(target.precision, cfg.tolerances)
    check_memory(cfg.batch, target.meta.in_channels, target.meta.image_size, error=DataError,
                 what=f"--batch {cfg.batch} at {target.meta.image_size}x{target.meta.image_size}")
    sources = [("random", SyntheticSource(target.meta, cfg.samples or DEFAULT_RANDOM_SAMPLES, seed=cfg.seed))]
    if cfg.images is not None:  # opened before any model runs, so bad data fails fast
        sources.append(("images", open_source(cfg.images, target.meta, limit=cfg.samples, seed=cfg.seed)))
        check_labels(sources[-1][1], target.meta.num_classes)
    reference, candidate = reference_runner(target, cfg.reference), candidate_runner(target, cfg.providers)
    report = ValidationReport(str(target.path), target.precision, candidate.name, _label(reference), tol)
    with reference, candidate:
        for name, source in sources:
            report.sets.append(compare_on_source(reference, candidate, source, tol, name=name, batch=cfg.batch, progress=cfg.progress))
    log.info("validated %s: %s", target.path, "pass" if report.passed else report.failure_message())
    return report


def compare_on_source(reference, candidate, source, tol: Tolerance, *, name: str, batch: int = 8, progress: bool = False) -> SetReport:
    """Run two active runners on every batch of ``source`` and check each output against ``tol``."""
    start = time.perf_counter()
    stats: dict[str, OutputStats] = {}
    for images, labels in source.batches(batch, progress=progress):
        ref_out = reference.infer({reference.input_names[0]: images})
        cand_out = candidate.infer({candidate.input_names[0]: images})
        for out_name, (ref, cand) in _pair_outputs(ref_out, cand_out).items():
            if ref.shape != cand.shape:
                raise ArtifactError(f"output {out_name!r}: candidate shape {cand.shape} differs from the reference's {ref.shape}; the two are not the same model")
            stats.setdefault(out_name, OutputStats()).update(ref, cand, labels)
    results = {k: v.result() for k, v in stats.items()}
    failures = [f for k, r in results.items() for f in check(r, tol, output=k, input_set=source.description)]
    return SetReport(name, source.description, source.fingerprint(), len(source), time.perf_counter() - start, results, failures)


def _pair_outputs(ref: dict, cand: dict) -> dict:
    shared = [k for k in ref if k in cand]
    if shared:
        return {k: (ref[k], cand[k]) for k in shared}
    if len(ref) == len(cand) == 1:  # one output each, named differently
        (rk, rv), (_, cv) = next(iter(ref.items())), next(iter(cand.items()))
        return {rk: (rv, cv)}
    raise ArtifactError(f"candidate outputs {sorted(cand)} share no name with the reference's {sorted(ref)}")


def _label(runner) -> str:
    path = getattr(runner, "path", None)
    return f"{runner.name} {Path(path).name}" if path else runner.name
