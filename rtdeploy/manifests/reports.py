"""The reports rtdeploy writes: validation (``validate --json``, ``validate-<precision>.json``), the
run folder's ``report.json``, and the benchmark report (``bench --json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rtdeploy.manifests.common import Precision
from rtdeploy.manifests.typed import Record


# -- validation -----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ToleranceSection(Record):
    """The limits the candidate was held to (null: not checked)."""

    cosine: float | None
    cosine_worst: float | None
    max_abs: float | None
    max_rel: float | None
    top1: float | None
    top5: float | None
    accuracy_drop: float | None


@dataclass(frozen=True, kw_only=True)
class OutputStatistics(Record):
    """Candidate vs reference on one output (see :mod:`rtdeploy.validate.compare`)."""

    samples: int
    max_abs_err: float
    mean_abs_err: float
    max_abs_err_of_range: float
    max_rel_err: float
    cosine_mean: float | None
    cosine_worst: float | None
    reference_range: float
    nonfinite: int
    reference_nonfinite: int
    top1_agreement: float | None
    top5_agreement: float | None
    reference_accuracy: float | None
    candidate_accuracy: float | None
    accuracy_drop_points: float | None


@dataclass(frozen=True, kw_only=True)
class FailureRow(Record):
    """One statistic out of tolerance; ``excess`` is the string ``"inf"`` for NaN/Inf outputs."""

    output: str
    statistic: str
    value: float
    limit: float | None
    excess: float | Literal["inf"]
    message: str


@dataclass(frozen=True, kw_only=True)
class InputSet(Record):
    """The comparison on one input set (``random`` or ``images``)."""

    name: str
    description: str
    fingerprint: str
    samples: int
    seconds: float
    outputs: dict[str, OutputStatistics]
    failures: tuple[FailureRow, ...]


@dataclass(frozen=True, kw_only=True)
class ValidationReportRecord(Record):
    """A candidate compared with its reference (``ValidationReport.to_dict()``)."""

    model: str
    precision: Precision
    candidate: str
    reference: str
    passed: bool
    worst: str | None
    tolerance: ToleranceSection
    sets: tuple[InputSet, ...]
    target: str | None = None
    inputs_note: str | None = None


# -- rtdeploy run's report.json -------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StageRow(Record):
    """What happened to one stage of ``rtdeploy run``; ``result`` is the stage's own JSON."""

    name: str
    status: Literal["made", "reused", "skipped", "failed"]
    seconds: float
    detail: str
    result: Any


@dataclass(frozen=True, kw_only=True)
class ValidationRow(Record):
    """One line of the run's validation table (one model — its precision, or ``int8-cpu`` — input set and output)."""

    precision: Literal["fp32", "fp16", "int8", "int8-cpu"]
    inputs: str
    samples: int
    cosine_mean: float | None
    cosine_worst: float | None
    top1_agreement: float | None
    max_abs_err: float | None
    max_abs_err_of_range: float | None
    reference_accuracy: float | None
    candidate_accuracy: float | None
    verdict: Literal["pass", "FAIL"]


@dataclass(frozen=True, kw_only=True)
class ValidationInputs(Record):
    """What the run's validations compared on: ``held-out`` (the calibration images set aside),
    ``images`` (``--images``) or ``random``; ``note`` says why random when real ones were asked for."""

    kind: Literal["held-out", "images", "random"]
    description: str
    samples: int
    note: str | None


@dataclass(frozen=True, kw_only=True)
class RunReportRecord(Record):
    """``rtdeploy run``'s ``report.json``."""

    outdir: str
    stages: tuple[StageRow, ...]
    config: dict[str, Any]
    created: str
    validation: tuple[ValidationRow, ...]
    artifacts: tuple[str, ...]
    validation_inputs: ValidationInputs | None = None


# -- rtdeploy bench --json ------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TimeStats(Record):
    """Summary statistics of a set of times, in milliseconds (a tail percentile is None when fewer
    than 10 samples lie beyond it)."""

    count: int
    min: float
    mean: float
    median: float
    p90: float | None
    p95: float | None
    p99: float | None
    max: float
    std: float
    cv: float
    tail_counts: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class TimedArtifact(Record):
    """The file a configuration timed."""

    path: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class BenchResult(Record):
    """One timed configuration (model, backend, precision, batch); see rtdeploy/bench/schema.json."""

    id: str
    model: str
    depth: int | None
    family: str
    image_size: int
    gmacs: float | None
    backend: Literal["torch", "onnxruntime", "tensorrt"]
    runner: str
    precision: str
    device: Literal["cpu", "cuda"]
    artifact: TimedArtifact | None
    batch: int
    settings: dict[str, Any]
    latency_ms: float
    throughput_ips: float
    repeat_spread: float
    repeat_low_ms: float
    repeat_high_ms: float
    host_ms: TimeStats
    repeats: tuple[dict[str, float], ...]
    device_ms: TimeStats | None
    split_ms: dict[str, TimeStats] | None
    warnings: tuple[str, ...]
    streams: int
    label: str
    quantization: dict[str, Any] | None
    throughput_window: dict[str, Any]
    per_stream: tuple[dict[str, Any], ...]


@dataclass(frozen=True, kw_only=True)
class SkippedConfig(Record):
    """A configuration the sweep could not run here, and why."""

    model: str
    backend: str
    precision: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class BenchReportRecord(Record):
    """``rtdeploy bench --json``'s report (schema id ``rtdeploy.bench/2``)."""

    schema: Literal["rtdeploy.bench/2"]
    created: str
    command: str | None
    settings: dict[str, Any]
    environment: dict[str, Any]
    results: tuple[BenchResult, ...]
    scaling: tuple[dict[str, Any], ...]
    skipped: tuple[SkippedConfig, ...]
    warnings: tuple[str, ...]
    measured: dict[str, Any]
    exports: dict[str, Any]
    notes: tuple[str, ...]
