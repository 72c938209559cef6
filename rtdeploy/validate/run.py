"""``validate``: compare a candidate runner with a reference runner on random inputs and images."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rtdeploy.errors import ArtifactError, DataError
from rtdeploy.library_errors import stage_boundary
from rtdeploy.validate.options import ValidateConfig
from rtdeploy.validate.compare import OutputStats, check
from rtdeploy.validate.report import SetReport, ValidationReport
from rtdeploy.validate.targets import candidate_runner, load_target, reference_runner
from rtdeploy.validate.tolerances import Tolerance, check_limit, tolerance_for

log = logging.getLogger(__name__)

DEFAULT_RANDOM_SAMPLES = 8  # one batch; each sample compares every logit, and --images adds real data


@stage_boundary("validate", ArtifactError)
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
    from rtdeploy.footprint import check_model_memory

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
    sample = target.meta.input_shape(1)[1:]
    if target.is_engine:  # no graph to read: the ResNet-shaped lower bound
        check_memory(cfg.batch, target.meta.in_channels, target.meta.image_size, error=DataError,
                     what=f"--batch {cfg.batch} at {target.meta.image_size}x{target.meta.image_size}")
    else:
        check_model_memory(target.path, cfg.batch, sample_shape=sample, what=f"validate --batch {cfg.batch} of {target.path.name}",
                           error=DataError)
    sources = [("random", SyntheticSource(target.meta, cfg.samples or DEFAULT_RANDOM_SAMPLES, seed=cfg.seed))]
    if cfg.images is not None:  # opened before any model runs, so bad data fails fast
        sources.append(("images", open_source(cfg.images, target.meta, limit=cfg.samples, seed=cfg.seed)))
        check_labels(sources[-1][1], target.meta.num_classes)
    reference, candidate = reference_runner(target, cfg.reference), candidate_runner(target, cfg.providers)
    other = getattr(reference, "path", None)  # an ONNX reference other than the model (its parent, --reference PATH)
    if other is not None and Path(other).resolve() != target.path.resolve():
        check_model_memory(other, cfg.batch, sample_shape=sample, what=f"validate --batch {cfg.batch} against {Path(other).name}",
                           error=DataError)
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
