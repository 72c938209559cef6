"""TensorRT runs whose per-inference times or per-layer profile are written in trtexec's formats.

Each is a run of its own after the timed windows, with the warm-up and length of a timed window
(:class:`~rtdeploy.bench.stoprule.StopRule`), so what the exports cost — a clock read around every
call, a profiler that times every layer — never lands in the reported latencies. This is trtexec's
``--separateProfileRun``, which the reference profiles in NVIDIA's TREx examples were made with.
The formats are written by :mod:`rtdeploy.trt.profiler`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rtdeploy.bench.harness import TrtTimer, time_window, warm_up
from rtdeploy.bench.stoprule import StopRule


class TracingTimer(TrtTimer):
    """A :class:`TrtTimer` that also keeps each call's host start and end (for ``--export-times``)."""

    def __init__(self, runner, feed):
        super().__init__(runner, feed)
        self.starts_ms: list[float] = []
        self.ends_ms: list[float] = []

    def step(self):
        t0 = time.perf_counter_ns()
        reader = super().step()
        t1 = time.perf_counter_ns()
        self.starts_ms.append(t0 / 1e6)
        self.ends_ms.append(t1 / 1e6)
        return reader

    def reset(self) -> None:
        """Forget the calls so far (after warm-up)."""
        self.starts_ms, self.ends_ms = [], []


def times_run(timer: TrtTimer, rule: StopRule, path: Path) -> int:
    """Warm up, then trace one window of the runner behind ``timer``; write ``path`` (trtexec ``--exportTimes``).

    Returns:
        the number of inferences written.
    """
    from rtdeploy.errors import BenchmarkError
    from rtdeploy.trt.profiler import trace_records, write_times

    tracer = TracingTimer(timer.runner, timer.feed)
    warm_up(tracer, rule.warmup_s)
    tracer.reset()
    window = time_window(tracer, iterations=rule.min_iterations, duration_s=rule.min_duration_s)
    if window.split_ms is None:
        raise BenchmarkError("--export-times needs the TensorRT runner's CUDA-event times (last_timings), "
                             "which this runner did not give; time without --export-times")
    write_times(path, trace_records(tracer.starts_ms, tracer.ends_ms, window.split_ms))
    return window.count


def profile_run(make_runner: Callable, feed: dict, rule: StopRule, path: Path) -> int:
    """Warm up a profiled runner, then collect per-layer times over one window; write ``path``
    (trtexec ``--exportProfile``).

    Args:
        make_runner: called with a :class:`rtdeploy.trt.profiler.LayerTimes`; returns a runner whose
            execution context reports to it.

    Returns:
        the number of inferences profiled.
    """
    from rtdeploy.errors import BenchmarkError
    from rtdeploy.trt.profiler import LayerTimes, write_profile

    times = LayerTimes()
    with make_runner(times) as runner:
        timer = TrtTimer(runner, feed)
        warm_up(timer, rule.warmup_s)
        times.reset()
        time_window(timer, iterations=rule.min_iterations, duration_s=rule.min_duration_s)
    if times.count == 0:
        raise BenchmarkError("TensorRT reported no layer times during the profiled run; the engine may have been built "
                             "with profiling verbosity NONE or the runner did not attach the profiler")
    write_profile(path, times)
    return times.count
