"""``validate``: compare a candidate runner with a reference runner on real and random inputs."""

from __future__ import annotations

import logging
from pathlib import Path

from rtdeploy.errors import ArtifactError, DataError
from rtdeploy.library_errors import stage_boundary
from rtdeploy.validate.options import ValidateConfig
from rtdeploy.validate.compare import OutputStats, check
from rtdeploy.validate.outputs import Outputs, OutputStore
from rtdeploy.validate.report import SetReport, ValidationReport
from rtdeploy.validate.targets import candidate_runner, is_own_reference, load_target, reference_runner
from rtdeploy.validate.tolerances import Tolerance, check_limit, tolerance_for

log = logging.getLogger(__name__)

DEFAULT_RANDOM_SAMPLES = 8  # one batch; each sample compares every logit, and --images adds real data


@stage_boundary("validate", ArtifactError)
def validate_model(cfg: ValidateConfig, *, store: OutputStore | None = None) -> ValidationReport:
    """Compare ``cfg.model`` with its reference; the report says whether it is within tolerance.

    Random inputs are compared when no real inputs are given, and for FP32 and FP16 besides real
    ones; an INT8 model is judged on real inputs alone when there are some (its scales are
    calibrated to real inputs: noise lies outside them by construction, so its error there says
    nothing about the model a user runs).

    Args:
        cfg: what to compare.
        store: outputs already computed (one per ``rtdeploy run``); each model runs once per input set.

    Raises:
        ArtifactError: the model or its reference cannot be read.
        DataError: the images cannot be used.
        MissingDependency: an engine was given and TensorRT is not available.
    """
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
    sample = target.meta.input_shape(1)[1:]
    if target.is_engine:  # no graph to read: the ResNet-shaped lower bound
        check_memory(cfg.batch, target.meta.in_channels, target.meta.image_size, error=DataError,
                     what=f"--batch {cfg.batch} at {target.meta.image_size}x{target.meta.image_size}")
    else:
        check_model_memory(target.path, cfg.batch, sample_shape=sample, what=f"validate --batch {cfg.batch} of {target.path.name}",
                           error=DataError)
    sets, note = _input_sets(cfg, target)  # opened before any model runs, so bad data fails fast
    random_only = all(name == "random" for name, _ in sets)
    tol = tolerance_for(target.precision, cfg.tolerances, target=target.quantized_for, random_only=random_only)
    reference, candidate = reference_runner(target, cfg.reference), candidate_runner(target, cfg.providers)
    other = getattr(reference, "path", None)  # an ONNX reference other than the model (its parent, --reference PATH)
    if other is not None and Path(other).resolve() != target.path.resolve():
        check_model_memory(other, cfg.batch, sample_shape=sample, what=f"validate --batch {cfg.batch} against {Path(other).name}",
                           error=DataError)
    itself = is_own_reference(target, cfg.reference)
    report = ValidationReport(str(target.path), target.precision, candidate.name,
                              f"itself ({_label(reference)}): an imported model is its own reference" if itself else _label(reference),
                              tol, target=target.quantized_for, inputs_note=note)
    store = store if store is not None else OutputStore()
    with reference, candidate:
        for name, source in sets:
            fingerprint = source.fingerprint()
            ref = store.outputs(reference, source, batch=cfg.batch, fingerprint=fingerprint, progress=cfg.progress, role="reference")
            cand = store.outputs(candidate, source, batch=cfg.batch, fingerprint=fingerprint, progress=cfg.progress, role="candidate")
            report.sets.append(compare_outputs(ref, cand, source, tol, name=name, fingerprint=fingerprint))
    log.info("validated %s: %s", target.path, "pass" if report.passed else report.failure_message())
    return report


def _input_sets(cfg: ValidateConfig, target) -> tuple[list[tuple[str, object]], str | None]:
    """The input sets to compare on, and a note when the verdict rests on random inputs although
    real ones were asked for (a calibration set too small to hold any out)."""
    from rtdeploy.data import SyntheticSource, open_source
    from rtdeploy.data.sources import check_labels, select_subset
    from rtdeploy.data.split import split_part

    real, note = None, None
    if cfg.images is not None and cfg.held_out:
        real, split = split_part(open_source(cfg.images, target.meta, seed=cfg.seed), "validation", cfg.seed)
        if not split.possible:
            real, note = None, f"on random inputs only: {split.too_few()}"
        elif cfg.samples is not None and cfg.samples < len(real):
            real = real.subset(select_subset(len(real), cfg.samples, cfg.seed, what=str(cfg.images), unit="images"),
                               "held out for validation")
    elif cfg.images is not None:
        real = open_source(cfg.images, target.meta, limit=cfg.samples, seed=cfg.seed)
    if real is None and note is None and target.precision == "int8":
        note = "on random inputs only (no images given): an INT8 model is checked there for gross errors only"
    sets: list[tuple[str, object]] = []
    if real is None or target.precision != "int8":
        sets.append(("random", SyntheticSource(target.meta, cfg.samples or DEFAULT_RANDOM_SAMPLES, seed=cfg.seed)))
    if real is not None:
        check_labels(real, target.meta.num_classes)
        sets.append(("held-out" if cfg.held_out else "images", real))
    return sets, note


def compare_outputs(ref: Outputs, cand: Outputs, source, tol: Tolerance, *, name: str, fingerprint: str,
                    chunk: int = 256) -> SetReport:
    """Statistics of ``cand`` against ``ref`` (two models' outputs on ``source``), checked against ``tol``."""
    stats: dict[str, OutputStats] = {}
    for out_name, (r, c) in _pair_outputs(ref.arrays, cand.arrays).items():
        if r.shape != c.shape:
            raise ArtifactError(f"output {out_name!r}: candidate shape {c.shape} differs from the reference's {r.shape}; the two are not the same model")
        acc = stats.setdefault(out_name, OutputStats())
        for start in range(0, len(r), chunk):
            labels = None if ref.labels is None else ref.labels[start:start + chunk]
            acc.update(r[start:start + chunk], c[start:start + chunk], labels)
    results = {k: v.result() for k, v in stats.items()}
    failures = [f for k, r in results.items() for f in check(r, tol, output=k, input_set=source.description)]
    return SetReport(name, source.description, fingerprint, len(source), ref.seconds + cand.seconds, results, failures)


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
