"""Statistics of a candidate's outputs against a reference's, accumulated batch by batch.

Kept deliberately small: one accumulator per output, one function that turns finished statistics
and a :class:`Tolerance` into failures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rtdeploy.validate.tolerances import CHECKS, Tolerance

_REL_FLOOR = 1e-3  # |reference| is floored at this fraction of max |reference| for the relative error
# A count statistic (agreement, accuracy drop) on n samples is a sample of the model's rate: it
# fails when a model exactly at the limit would show one this bad less often than this. On 12
# held-out images one flipped class is 92 % agreement (an 8-point accuracy drop when labelled),
# which a model that agrees 97 % of the time shows every third time; on thousands of images the
# test is the plain comparison within a fraction of a point. (docs/validation.md)
ALPHA = 0.01
COUNTED = {"top1_agreement", "top5_agreement", "accuracy_drop_points"}


@dataclass(frozen=True)
class Failure:
    """One statistic out of tolerance.

    ``excess`` says how far out: for an error, value / limit; for a similarity or agreement,
    (1 - value) / (1 - limit); infinite for NaN/Inf. The largest excess is the worst failure.
    """

    input_set: str
    output: str
    statistic: str
    value: float
    limit: float | None
    excess: float

    samples: int | None = None

    def describe(self) -> str:
        """``top1_agreement 0.91 < 0.99 (logits, images in dev/)``."""
        if self.limit is None:
            return f"{self.statistic} = {self.value:g} ({self.output}, {self.input_set})"
        op = "<" if CHECKS.get(self.statistic, ("", "min"))[1] == "min" else ">"
        counted = (f"; below the limit beyond chance on {self.samples:,} samples (p < {ALPHA:g})"
                   if self.statistic in COUNTED and self.samples else "")
        return f"{self.statistic} {self.value:.6g} {op} {self.limit:g} ({self.output}, {self.input_set}{counted})"


class OutputStats:
    """Running comparison of one output over batches; :meth:`result` gives the statistics."""

    def __init__(self) -> None:
        self.samples = 0
        self.max_abs = self.sum_abs = self.max_rel = 0.0
        self.elements = 0
        self.ref_min, self.ref_max = math.inf, -math.inf
        self.cosines: list[np.ndarray] = []
        self.top1 = self.top5 = self.classified = 0
        self.nonfinite = self.ref_nonfinite = 0
        self.correct_ref = self.correct_cand = self.labelled = 0

    def update(self, ref: np.ndarray, cand: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Add one batch of reference and candidate outputs (same shape, batch first)."""
        ref, cand = ref.astype(np.float64), cand.astype(np.float64)
        bad_ref, bad_cand = ~np.isfinite(ref), ~np.isfinite(cand)
        self.ref_nonfinite += int(bad_ref.sum())
        self.nonfinite += int(bad_cand.sum())
        # Non-finite values are counted (and fail) above; elsewhere they would poison every statistic.
        ref = np.where(bad_ref, 0.0, ref)
        cand = np.where(bad_cand | bad_ref, ref, cand)
        err = np.abs(cand - ref)
        self.samples += len(ref)
        self.elements += err.size
        self.sum_abs += float(err.sum())
        self.max_abs = max(self.max_abs, float(err.max(initial=0.0)))
        floor = max(_REL_FLOOR * float(np.abs(ref).max(initial=0.0)), 1e-30)
        self.max_rel = max(self.max_rel, float((err / np.maximum(np.abs(ref), floor)).max(initial=0.0)))
        self.ref_min, self.ref_max = min(self.ref_min, float(ref.min())), max(self.ref_max, float(ref.max()))
        self.cosines.append(_cosine_per_sample(ref, cand))
        if ref.ndim == 2:
            self._update_classes(ref, cand, labels)

    def _update_classes(self, ref: np.ndarray, cand: np.ndarray, labels: np.ndarray | None) -> None:
        ref_top = ref.argmax(axis=1)
        k = min(5, ref.shape[1])
        self.classified += len(ref)
        cand_top5 = np.argpartition(-cand, k - 1, axis=1)[:, :k]
        self.top1 += int((cand.argmax(axis=1) == ref_top).sum())
        self.top5 += int((cand_top5 == ref_top[:, None]).any(axis=1).sum())
        if labels is not None:
            self.labelled += len(labels)
            self.correct_ref += int((ref_top == labels).sum())
            self.correct_cand += int((cand.argmax(axis=1) == labels).sum())

    def result(self) -> dict[str, float | int | None]:
        """The statistics: errors, cosines, agreements, NaN/Inf counts, accuracies when labelled."""
        cos = np.concatenate(self.cosines) if self.cosines else np.ones(0)
        span = self.ref_max - self.ref_min if self.samples else 0.0
        stats: dict[str, float | int | None] = {
            "samples": self.samples,
            "max_abs_err": self.max_abs,
            "mean_abs_err": self.sum_abs / max(self.elements, 1),
            "max_abs_err_of_range": self.max_abs / span if span > 0 else (0.0 if self.max_abs == 0 else math.inf),
            "max_rel_err": self.max_rel,
            "cosine_mean": float(cos.mean()) if cos.size else None,
            "cosine_worst": float(cos.min()) if cos.size else None,
            "reference_range": span,
            "nonfinite": self.nonfinite,
            "reference_nonfinite": self.ref_nonfinite,
            "top1_agreement": self.top1 / self.classified if self.classified else None,
            "top5_agreement": self.top5 / self.classified if self.classified else None,
            "reference_accuracy": None, "candidate_accuracy": None, "accuracy_drop_points": None,
        }
        if self.labelled:
            ref_acc, cand_acc = self.correct_ref / self.labelled, self.correct_cand / self.labelled
            stats.update(reference_accuracy=ref_acc, candidate_accuracy=cand_acc, accuracy_drop_points=100 * (ref_acc - cand_acc))
        return stats


def _cosine_per_sample(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    r, c = ref.reshape(len(ref), -1), cand.reshape(len(cand), -1)
    norms = np.linalg.norm(r, axis=1) * np.linalg.norm(c, axis=1)
    dots = (r * c).sum(axis=1)
    # Two all-zero vectors are identical; one zero vector against a non-zero one shares nothing.
    both_zero = (np.linalg.norm(r, axis=1) == 0) & (np.linalg.norm(c, axis=1) == 0)
    return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(both_zero, 1.0, 0.0))


def check(stats: dict, tol: Tolerance, *, output: str, input_set: str) -> list[Failure]:
    """The statistics of one output that are out of tolerance (NaN/Inf always are)."""
    failures = []
    for name in ("nonfinite", "reference_nonfinite"):
        if stats[name]:
            failures.append(Failure(input_set, output, name, float(stats[name]), 0, math.inf))
    for stat, (field, bound) in CHECKS.items():
        limit, value = getattr(tol, field), stats.get(stat)
        if limit is None or value is None:
            continue
        if bound == "max" and value > limit:
            excess = value / limit if limit > 0 else math.inf
        elif bound == "min" and value < limit:
            excess = (1 - value) / (1 - limit) if limit < 1 else math.inf
        else:
            continue
        if stat in COUNTED and _within_chance(stat, value, limit, int(stats["samples"])):
            continue
        failures.append(Failure(input_set, output, stat, float(value), limit, excess, int(stats["samples"])))
    return failures


def _within_chance(stat: str, value: float, limit: float, n: int) -> bool:
    """True when a model exactly at ``limit`` shows a ``stat`` as bad as ``value`` on ``n`` samples
    at least ``ALPHA`` of the time (one-sided binomial test on the count behind the statistic).

    Agreements count agreeing samples (rate ``limit``); an accuracy drop counts the net samples
    the candidate gets wrong that the reference got right (rate ``limit`` / 100).
    """
    if n <= 0:
        return False
    if stat == "accuracy_drop_points":
        return binomial_tail(n, limit / 100, round(value / 100 * n), upper=True) >= ALPHA
    return binomial_tail(n, limit, round(value * n), upper=False) >= ALPHA


def binomial_tail(n: int, p: float, k: int, *, upper: bool) -> float:
    """P(X >= k) (``upper``) or P(X <= k) for X ~ Binomial(n, p), exactly (log-space terms)."""
    if p <= 0.0:
        return 1.0 if (k <= 0 if upper else k >= 0) else 0.0
    if p >= 1.0:
        return 1.0 if (k <= n if upper else k >= n) else 0.0
    ks = range(max(k, 0), n + 1) if upper else range(0, min(k, n) + 1)
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    return min(1.0, sum(math.exp(base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q) for i in ks))
