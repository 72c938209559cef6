"""The validation report: statistics per input set and output, the failures, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from rtdeploy.errors import ValidationFailed
from rtdeploy.manifests import check_report
from rtdeploy.validate.compare import Failure
from rtdeploy.validate.tolerances import Tolerance


@dataclass
class SetReport:
    """The comparison on one input set (random inputs, or the user's images).

    Attributes:
        name: ``random`` or ``images``.
        description: the source's one-line description.
        fingerprint: the source's fingerprint (which samples exactly).
        samples: how many samples were compared.
        seconds: wall time of the comparison (both runners).
        outputs: statistics per output name (see :meth:`OutputStats.result`).
        failures: the statistics out of tolerance.
    """

    name: str
    description: str
    fingerprint: str
    samples: int
    seconds: float
    outputs: dict[str, dict]
    failures: list[Failure] = field(default_factory=list)


@dataclass
class ValidationReport:
    """A candidate model compared with its reference on one or more input sets.

    Attributes:
        target: the INT8 target (``tensorrt``, ``onnxruntime-cpu``) whose tolerance applied; None
            for other precisions.
        inputs_note: set when the verdict rests on random inputs although real ones were asked for
            (why, in one clause).
    """

    model: str
    precision: str
    candidate: str
    reference: str
    tolerance: Tolerance
    sets: list[SetReport] = field(default_factory=list)
    target: str | None = None
    inputs_note: str | None = None

    @property
    def failures(self) -> list[Failure]:
        """Every failure of every set, worst first."""
        return sorted((f for s in self.sets for f in s.failures), key=lambda f: -f.excess)

    @property
    def passed(self) -> bool:
        """True when no statistic is out of tolerance."""
        return not self.failures

    @property
    def worst(self) -> Failure | None:
        """The failure furthest out of tolerance, or None."""
        failures = self.failures
        return failures[0] if failures else None

    def failure_message(self) -> str:
        """One line naming the worst statistic and how to proceed."""
        worst = self.worst
        if worst is None:
            return f"{self.model} is within tolerance"
        more = len(self.failures) - 1
        return (f"{self.model} ({self.precision}) is out of tolerance against {self.reference}: worst {worst.describe()}"
                + (f", and {more} more" if more else "")
                + "; see the table above, or relax a limit with --tol-* if this is expected")

    def raise_for_failure(self) -> None:
        """Raise :class:`ValidationFailed` (exit code 3) when out of tolerance."""
        if not self.passed:
            raise ValidationFailed(self.failure_message())

    def to_dict(self) -> dict:
        """A JSON-ready dict (checked against the validation-report record)."""
        return check_report("validation-report", {
            "model": self.model,
            "precision": self.precision,
            "candidate": self.candidate,
            "reference": self.reference,
            "passed": self.passed,
            "worst": self.worst.describe() if self.worst else None,
            "tolerance": self.tolerance.to_dict(),
            "target": self.target,
            "inputs_note": self.inputs_note,
            "sets": [
                {"name": s.name, "description": s.description, "fingerprint": s.fingerprint, "samples": s.samples,
                 "seconds": round(s.seconds, 3), "outputs": s.outputs, "failures": [_failure_dict(f) for f in s.failures]}
                for s in self.sets
            ],
        })


def _failure_dict(f: Failure) -> dict:
    return {"output": f.output, "statistic": f.statistic, "value": f.value, "limit": f.limit,
            "excess": f.excess if f.excess != float("inf") else "inf", "message": f.describe()}
