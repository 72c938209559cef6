"""Timing any runner: warm-up, timed windows by iterations or duration, interleaved repeats.

A :class:`Case` is one configuration (a runner, a feed, a batch size and a timer). The harness runs
every case's repeats interleaved — repeat 1 of every case, then repeat 2 of every case in reverse
order, and so on — so a change in machine load hits all configurations alike instead of whichever
happened to run last. Each timed window is preceded by its own warm-up, because the case timed just
before has evicted this one's caches, and ends by the :class:`~rtdeploy.bench.stoprule.StopRule`
(both a minimum duration and a minimum number of iterations). A case with several timers runs them
as concurrent streams, one thread each (:func:`time_streams`).

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
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rtdeploy.bench.stoprule import StopRule

SPLIT_PARTS = ("h2d", "compute", "d2h")


@dataclass
class Window:
    """One timed window of a case.

    Attributes:
        host_ms: host wall latency of each iteration (all streams, stream after stream).
        elapsed_ms: wall time of the whole window, from its start until the last stream finished
            its last inference (throughput = images completed / this).
        split_ms: per-iteration device times by part (``h2d``, ``compute``, ``d2h``), or None when
            the timer measures host time only.
        stream_counts: inferences completed by each stream (one entry for a single stream).
    """

    host_ms: list[float]
    elapsed_ms: float
    split_ms: dict[str, list[float]] | None = None
    stream_counts: list[int] | None = None

    @property
    def count(self) -> int:
        """Inferences completed in the window (all streams)."""
        return len(self.host_ms)

    def stream_host_ms(self) -> list[list[float]]:
        """``host_ms`` cut back into one list per stream."""
        counts = self.stream_counts or [len(self.host_ms)]
        out, i = [], 0
        for n in counts:
            out.append(self.host_ms[i:i + n])
            i += n
        return out


class HostTimer:
    """Host wall time around ``runner.infer(feed)``."""

    kind = "host"

    def __init__(self, runner, feed: dict[str, np.ndarray]):
        self._infer = runner.infer
        self._feed = feed
        self.runner = runner

    @property
    def feed(self) -> dict[str, np.ndarray]:
        """The input this timer runs."""
        return self._feed

    def step(self) -> Callable[[], dict[str, float]] | None:
        """Run one inference; return a reader of its device times, or None."""
        self._infer(self._feed)
        return None


class TorchCudaTimer(HostTimer):
    """Host wall time plus CUDA-event times of H2D, forward and D2H for a ``TorchRunner`` on CUDA.

    With ``stream`` (a ``torch.cuda.Stream``), copies, forward pass and events all run on that
    stream, so several timers on one model run concurrently (``--streams``).
    """

    kind = "torch-cuda-events"

    def __init__(self, runner, feed: dict[str, np.ndarray], stream=None):
        import torch

        super().__init__(runner, feed)
        self._runner = runner
        self._array = feed[runner.input_names[0]]
        self._events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        self._stream = stream
        self._on_stream = (lambda: torch.cuda.stream(stream)) if stream is not None else contextlib.nullcontext

    def step(self) -> Callable[[], dict[str, float]]:
        with self._on_stream():
            return self._step()

    def _step(self) -> Callable[[], dict[str, float]]:
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
        timer: a :class:`HostTimer` (or subclass) bound to an active runner and its feed, or a list
            of them: one per concurrent stream (each its own runner, session, or CUDA stream).
        batch: images per inference (for throughput).
        windows: the timed windows, filled by :func:`run_interleaved`.
        rule: this case's stop rule (None: the one given to :func:`run_interleaved`).
    """

    key: str
    timer: HostTimer | Sequence[HostTimer]
    batch: int
    windows: list[Window] = field(default_factory=list)
    rule: StopRule | None = None

    @property
    def timers(self) -> list[HostTimer]:
        """One timer per stream."""
        return list(self.timer) if isinstance(self.timer, (list, tuple)) else [self.timer]

    @property
    def streams(self) -> int:
        """Concurrent streams."""
        return len(self.timers)


Clock = Callable[[], int]


def time_window(timer: HostTimer, *, iterations: int | None = 1, duration_s: float = 0.0,
                clock: Clock = time.perf_counter_ns) -> Window:
    """Time inferences until both ``iterations`` have run and ``duration_s`` has passed (at least one).

    Python's garbage collector is paused during the window so a collection does not land in a
    measured iteration. ``clock`` (nanoseconds) is injectable so tests can drive a synthetic one.
    """
    rule = StopRule(0.0, iterations or 1, duration_s)
    with _gc_paused():
        host, readers, start, stop = _stream_loop(timer, rule, clock, clock())
    return _window([host], [readers], stop - start)


def time_streams(timers: Sequence[HostTimer], *, iterations: int | None = 1, duration_s: float = 0.0,
                 clock: Clock = time.perf_counter_ns) -> Window:
    """Time several streams at once, each in its own thread, under one stop rule applied per stream.

    All threads start together (a barrier) from one shared start time; each runs until it has done
    ``iterations`` and ``duration_s`` has passed. The window lasts until the last stream finishes, so
    its throughput is every image completed over the wall time they took together. Libraries that
    release the GIL while they compute (onnxruntime, torch, TensorRT) run the streams concurrently.

    Raises:
        whatever a stream's inference raised (the first one, after every thread has stopped).
    """
    if len(timers) == 1:
        return time_window(timers[0], iterations=iterations, duration_s=duration_s, clock=clock)
    rule = StopRule(0.0, iterations or 1, duration_s)
    results: list = [None] * len(timers)
    errors: list[BaseException] = []
    start: list[int] = []
    barrier = threading.Barrier(len(timers), action=lambda: start.append(clock()))

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = _stream_loop(timers[i], rule, clock, start[0])
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,), name=f"bench-stream-{i}", daemon=True) for i in range(len(timers))]
    with _gc_paused():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if real or errors:
        raise (real or errors)[0]
    stop = max(r[3] for r in results)
    return _window([r[0] for r in results], [r[1] for r in results], stop - start[0])


def _stream_loop(timer: HostTimer, rule: StopRule, clock: Clock, start: int) -> tuple[list[int], list, int, int]:
    """One stream's timed loop: nothing but two clock reads, the step and an append per inference."""
    step = timer.step
    host: list[int] = []
    readers: list[dict[str, float]] = []
    end = start + int(rule.min_duration_s * 1e9)
    limit = rule.min_iterations
    while True:
        t0 = clock()
        reader = step()
        t1 = clock()
        host.append(t1 - t0)
        if reader is not None:
            readers.append(reader())
        if len(host) >= limit and t1 >= end:
            return host, readers, start, t1


def _window(hosts: list[list[int]], readers: list[list[dict]], elapsed_ns: int) -> Window:
    flat = [r for rs in readers for r in rs]
    complete = all(len(rs) == len(h) for rs, h in zip(readers, hosts))
    split = {p: [r[p] for r in flat] for p in SPLIT_PARTS} if flat and complete else None
    return Window(host_ms=[t / 1e6 for h in hosts for t in h], elapsed_ms=elapsed_ns / 1e6, split_ms=split,
                  stream_counts=[len(h) for h in hosts])


def warm_up(timer: HostTimer | Sequence[HostTimer], seconds: float) -> int:
    """Run inferences for ``seconds`` (at least one when ``seconds`` > 0), all streams at once; returns how many ran."""
    if seconds <= 0:
        return 0
    timers = list(timer) if isinstance(timer, (list, tuple)) else [timer]
    return time_streams(timers, iterations=1, duration_s=seconds).count


def run_interleaved(cases: Sequence[Case], *, warmup_s: float | None = None, iterations: int | None = None,
                    duration_s: float | None = None, repeats: int, on_window: Callable[[Case, int], None] | None = None,
                    rule: StopRule | None = None, clock: Clock = time.perf_counter_ns) -> None:
    """Time every case ``repeats`` times, interleaved, appending each window to ``case.windows``.

    Odd repeats run the cases in reverse order, so no case always follows the same neighbour.

    Args:
        cases: cases whose runners are active.
        rule: the stop rule of cases that have none of their own; built from ``warmup_s``,
            ``iterations`` and ``duration_s`` when not given (both minima apply).
        repeats: windows per case.
        on_window: called after each window with the case and the repeat index (progress bars).
        clock: the window clock in nanoseconds (tests drive a synthetic one).
    """
    if rule is None:
        rule = StopRule(warmup_s or 0.0, iterations or 1, duration_s or 0.0)
    for r in range(repeats):
        order = cases if r % 2 == 0 else list(reversed(cases))
        for case in order:
            cr = case.rule or rule
            warm_up(case.timers, cr.warmup_s)
            case.windows.append(time_streams(case.timers, iterations=cr.min_iterations, duration_s=cr.min_duration_s,
                                             clock=clock))
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
