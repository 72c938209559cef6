"""When a timed window ends: warm-up, then both a minimum duration and a minimum number of iterations.

This is trtexec's rule (``--warmUp`` ms, then run until ``--duration`` seconds *and* ``--iterations``
queries are both reached). A duration alone gives a handful of samples for a slow model on a CPU;
an iteration count alone gives a window too short to average out clock and scheduler noise for a
fast engine on a GPU. Requiring both bounds each side.

Defaults (per window; ``--repeats`` windows per configuration, 3 by default, pooled for the
percentiles):

* **GPU** (``--device cuda``, and TensorRT always): 200 ms warm-up, at least 1 s and at least 200
  iterations. 200 iterations per window guarantee >= 200 timed inferences even for a single window,
  and 600 pooled over the default 3 repeats: p90 and p95 always have >= 10 samples beyond them; p99
  needs 1000 samples, which a batch-1 ResNet under ~3 ms reaches within the 1 s minimum of each window.
* **CPU**: 200 ms warm-up, at least 1 s and at least 20 iterations. A ResNet-152 takes ~0.25 s per
  image on one core of the project machine, so 200 iterations would cost a minute per window; 20
  gives each repeat a median of 20 samples (the repeat spread compares like with like) and 60 pooled
  samples, while a fast model still runs its full second (a ResNet-18 at ~17 ms gives ~60 per window,
  ~180 pooled: p90 reported, p95 and p99 "n/a" until the windows are made longer).
"""

from __future__ import annotations

from dataclasses import dataclass

WARMUP_S = 0.2
MIN_DURATION_S = 1.0
MIN_ITERATIONS = {"cuda": 200, "cpu": 20}


@dataclass(frozen=True)
class StopRule:
    """How long each timed window runs.

    Attributes:
        warmup_s: untimed inferences for this long before the window (at least one when > 0).
        min_iterations: the window runs at least this many inferences (per stream).
        min_duration_s: ... and at least this long (0: no minimum duration).
    """

    warmup_s: float = WARMUP_S
    min_iterations: int = MIN_ITERATIONS["cpu"]
    min_duration_s: float = MIN_DURATION_S

    def done(self, count: int, now_ns: int, end_ns: int) -> bool:
        """Whether a window that has run ``count`` inferences may stop at ``now_ns`` (its minimum ends at ``end_ns``)."""
        return count >= self.min_iterations and now_ns >= end_ns

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"warmup_s": self.warmup_s, "min_iterations": self.min_iterations, "min_duration_s": self.min_duration_s}


def default_rule(device: str, *, warmup_s: float | None = None, iterations: int | None = None,
                 duration_s: float | None = None) -> StopRule:
    """The stop rule for ``device`` (``cpu`` or ``cuda``), with any value the user gave in place of its default."""
    return StopRule(
        warmup_s=WARMUP_S if warmup_s is None else warmup_s,
        min_iterations=MIN_ITERATIONS["cuda" if device == "cuda" else "cpu"] if iterations is None else iterations,
        min_duration_s=MIN_DURATION_S if duration_s is None else duration_s,
    )
