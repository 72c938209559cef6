"""Timing any runner: warm-up, timed windows by iterations or duration, interleaved repeats.

A :class:`Case` is one configuration (a runner, a feed, a batch size and a timer). The harness runs
every case's repeats interleaved — repeat 1 of every case, then repeat 2 of every case in reverse
order, and so on — so a change in machine load hits all configurations alike instead of whichever
happened to run last. Each timed window is preceded by its own warm-up, because the case timed just
before has evicted this one's caches.

Timers:

* :class:`HostTimer` — host wall time (``time.perf_counter_ns``) around ``runner.infer(feed)``;
  the loop around it does nothing else, so its overhead is a clock read and a list append.
* :class:`TorchCudaTimer` — the same host wall time, plus CUDA events around the host-to-device
  copy, the forward pass and the device-to-host copy (device time apart from host time).
* :class:`TrtTimer` — host wall time around a TensorRT runner's ``infer``, plus the H2D / compute /
  D2H times that runner measures itself with CUDA events.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

SPLIT_PARTS = ("h2d", "compute", "d2h")


@dataclass
class Window:
    """One timed window of a case.

    Attributes:
        host_ms: host wall latency of each iteration.
        elapsed_ms: wall time of the whole window (for throughput).
        split_ms: per-iteration device times by part (``h2d``, ``compute``, ``d2h``), or None when
            the timer measures host time only.
    """

    host_ms: list[float]
    elapsed_ms: float
    split_ms: dict[str, list[float]] | None = None


class HostTimer:
    """Host wall time around ``runner.infer(feed)``."""

    kind = "host"

    def __init__(self, runner, feed: dict[str, np.ndarray]):
        self._infer = runner.infer
        self._feed = feed

    def step(self) -> Callable[[], dict[str, float]] | None:
        """Run one inference; return a reader of its device times, or None."""
        self._infer(self._feed)
        return None


class TorchCudaTimer(HostTimer):
    """Host wall time plus CUDA-event times of H2D, forward and D2H for a ``TorchRunner`` on CUDA."""

    kind = "torch-cuda-events"

    def __init__(self, runner, feed: dict[str, np.ndarray]):
        import torch

        super().__init__(runner, feed)
        self._runner = runner
        self._array = feed[runner.input_names[0]]
        self._events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]

    def step(self) -> Callable[[], dict[str, float]]:
        e0, e1, e2, e3 = self._events
        e0.record()
        x = self._runner.to_device(self._array)
        e1.record()
        y = self._runner.forward_tensor(x)
        e2.record()
        y.float().cpu()  # a blocking copy: the host waits for the device here
        e3.record()
        e3.synchronize()
        return self._read

    def _read(self) -> dict[str, float]:
        e0, e1, e2, e3 = self._events
        return {"h2d": e0.elapsed_time(e1), "compute": e1.elapsed_time(e2), "d2h": e2.elapsed_time(e3)}


class TrtTimer(HostTimer):
    """Host wall time plus the H2D / compute / D2H times a TensorRT runner records per call.

    The runner exposes them as ``last_timings`` (a dict of milliseconds keyed ``h2d``, ``compute``,
    ``d2h``, possibly with an ``_ms`` suffix); a runner without them is timed on the host only.
    """

    kind = "tensorrt-cuda-events"

    def __init__(self, runner, feed: dict[str, np.ndarray]):
        super().__init__(runner, feed)
        self._runner = runner

    def step(self) -> Callable[[], dict[str, float]] | None:
        self._infer(self._feed)
        return self._read if getattr(self._runner, "last_timings", None) else None

    def _read(self) -> dict[str, float]:
        t = self._runner.last_timings
        return {p: float(t[p] if p in t else t[f"{p}_ms"]) for p in SPLIT_PARTS}


@dataclass
class Case:
    """One configuration to time.

    Attributes:
        key: a unique label.
        timer: a :class:`HostTimer` (or subclass) bound to an active runner and its feed.
        batch: images per inference (for throughput).
        windows: the timed windows, filled by :func:`run_interleaved`.
    """

    key: str
    timer: HostTimer
    batch: int
    windows: list[Window] = field(default_factory=list)


def time_window(timer: HostTimer, *, iterations: int | None, duration_s: float) -> Window:
    """Time ``iterations`` inferences, or as many as fit in ``duration_s`` (at least one).

    Python's garbage collector is paused during the window so a collection does not land in a
    measured iteration.
    """
    clock = time.perf_counter_ns
    step = timer.step
    host: list[int] = []
    readers: list[dict[str, float]] = []
    limit = iterations or 0
    with _gc_paused():
        start = clock()
        end = start + int(duration_s * 1e9)
        while True:
            t0 = clock()
            reader = step()
            t1 = clock()
            host.append(t1 - t0)
            if reader is not None:
                readers.append(reader())
            if (len(host) >= limit) if limit else (t1 >= end):
                break
        elapsed = clock() - start
    split = {p: [r[p] for r in readers] for p in SPLIT_PARTS} if readers else None
    return Window(host_ms=[t / 1e6 for t in host], elapsed_ms=elapsed / 1e6, split_ms=split)


def warm_up(timer: HostTimer, seconds: float) -> int:
    """Run inferences for ``seconds`` (at least one when ``seconds`` > 0); returns how many ran."""
    if seconds <= 0:
        return 0
    step = timer.step
    end = time.perf_counter() + seconds
    count = 0
    while True:
        step()
        count += 1
        if time.perf_counter() >= end:
            return count


def run_interleaved(cases: Sequence[Case], *, warmup_s: float, iterations: int | None, duration_s: float,
                    repeats: int, on_window: Callable[[Case, int], None] | None = None) -> None:
    """Time every case ``repeats`` times, interleaved, appending each window to ``case.windows``.

    Odd repeats run the cases in reverse order, so no case always follows the same neighbour.

    Args:
        cases: cases whose runners are active.
        warmup_s: warm-up before each window.
        iterations, duration_s: the window's length (iterations win when given).
        repeats: windows per case.
        on_window: called after each window with the case and the repeat index (progress bars).
    """
    for r in range(repeats):
        order = cases if r % 2 == 0 else list(reversed(cases))
        for case in order:
            warm_up(case.timer, warmup_s)
            case.windows.append(time_window(case.timer, iterations=iterations, duration_s=duration_s))
            if on_window is not None:
                on_window(case, r)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
