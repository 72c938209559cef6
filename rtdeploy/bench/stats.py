"""Latency statistics: percentiles, spread, throughput, and the median of repeats.

Percentiles use linear interpolation between the two nearest ranks (numpy's default, Hyndman and
Fan's type 7): for sorted samples ``x[0..n-1]`` the q-th percentile sits at rank ``q/100 * (n-1)``.
The standard deviation is the sample one (divided by ``n - 1``); the coefficient of variation is
``std / mean``. All times here are in milliseconds.

A tail percentile is only as good as the samples beyond it: p99 of 10 samples is an interpolation
towards the maximum, not a 1-in-100 latency. So p90/p95/p99 are reported only when at least
:data:`MIN_TAIL` samples lie beyond them (p90 needs 100 samples, p95 200, p99 1000) and are None
otherwise; ``tail_counts`` says how many samples each tail holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

PERCENTILES = (90, 95, 99)
# A tail percentile resting on fewer samples beyond it than this is not reported (None, "n/a").
MIN_TAIL = 10
# Above this coefficient of variation (or relative spread of the repeat medians) a result is flagged.
HIGH_CV = 0.10
HIGH_SPREAD = 0.10


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, interpolating linearly between ranks.

    Raises:
        ValueError: no values, or ``q`` outside 0..100.
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    rank = q / 100 * (len(sorted_values) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (rank - lo) * (sorted_values[hi] - sorted_values[lo])


def tail_count(n: int, q: int) -> int:
    """How many of ``n`` samples lie beyond the ``q``-th percentile (``floor(n * (100 - q) / 100)``)."""
    return n * (100 - q) // 100


def min_samples_for(q: int) -> int:
    """The fewest samples for which the ``q``-th percentile's tail holds :data:`MIN_TAIL` samples."""
    return -(-MIN_TAIL * 100 // (100 - q))


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one set of latencies (milliseconds).

    ``p90``/``p95``/``p99`` are None when fewer than :data:`MIN_TAIL` samples lie beyond them;
    ``tail_counts`` maps ``"p90"``.. to the number of samples beyond each.
    """

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

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def summarize(latencies_ms: Sequence[float]) -> LatencyStats:
    """Statistics of a sequence of latencies in milliseconds.

    Raises:
        ValueError: the sequence is empty.
    """
    if not latencies_ms:
        raise ValueError("no latencies to summarize")
    xs = sorted(float(x) for x in latencies_ms)
    n = len(xs)
    mean = math.fsum(xs) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    tails = {f"p{q}": tail_count(n, q) for q in PERCENTILES}
    tail = {f"p{q}": percentile(xs, q) if tails[f"p{q}"] >= MIN_TAIL else None for q in PERCENTILES}
    return LatencyStats(count=n, min=xs[0], mean=mean, median=percentile(xs, 50), **tail, max=xs[-1], std=std,
                        cv=std / mean if mean > 0 else 0.0, tail_counts=tails)


def throughput(batch: int, count: int, elapsed_ms: float) -> float:
    """Images per second: ``batch * count`` images processed in ``elapsed_ms``."""
    return batch * count * 1000.0 / elapsed_ms if elapsed_ms > 0 else 0.0


@dataclass(frozen=True)
class RepeatSummary:
    """The headline of several repeats of one configuration.

    Attributes:
        median_ms: the median of the repeats' median latencies (the headline latency).
        low_ms, high_ms: the smallest and largest repeat median.
        spread: ``(high_ms - low_ms) / median_ms``, the relative spread across repeats.
        throughput_ips: the median of the repeats' throughputs (images/s).
    """

    median_ms: float
    low_ms: float
    high_ms: float
    spread: float
    throughput_ips: float

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def summarize_repeats(repeat_medians_ms: Sequence[float], repeat_throughputs: Sequence[float]) -> RepeatSummary:
    """Median of repeats with its spread.

    Args:
        repeat_medians_ms: each repeat's median latency.
        repeat_throughputs: each repeat's throughput in images/s.

    Raises:
        ValueError: no repeats, or the two sequences differ in length.
    """
    if not repeat_medians_ms or len(repeat_medians_ms) != len(repeat_throughputs):
        raise ValueError("need one median and one throughput per repeat, at least one repeat")
    meds = sorted(repeat_medians_ms)
    mid = percentile(meds, 50)
    return RepeatSummary(
        median_ms=mid, low_ms=meds[0], high_ms=meds[-1], spread=(meds[-1] - meds[0]) / mid if mid > 0 else 0.0,
        throughput_ips=percentile(sorted(repeat_throughputs), 50),
    )


def noise_warnings(label: str, stats: LatencyStats, repeats: RepeatSummary | None) -> list[str]:
    """Short warnings for a configuration whose numbers are too noisy to take at face value."""
    out = []
    if stats.count > 1 and stats.cv > HIGH_CV:
        out.append(f"{label}: latency CV {stats.cv:.0%} > {HIGH_CV:.0%}")
    if repeats is not None and repeats.spread > HIGH_SPREAD:
        out.append(f"{label}: repeat medians spread {repeats.spread:.0%} > {HIGH_SPREAD:.0%} "
                   f"({repeats.low_ms:.4g}..{repeats.high_ms:.4g} ms)")
    return out


NOISE_ADVICE = ("noisy numbers: compare medians with their spread, add --repeats (short windows, many repeats resist "
                "bursts of load), use --threads 1 on a shared machine, or re-run on a quiet one")
