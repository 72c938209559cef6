"""Per-layer times of a TensorRT engine, and trtexec's ``--exportProfile`` / ``--exportTimes`` JSON.

TensorRT calls an ``IProfiler``'s ``report_layer_time(layer_name, ms)`` once per layer for each
inference of an execution context the profiler is attached to (TensorRT Python API,
``tensorrt.IProfiler``: "the profiler will be called once per layer for each invocation of
IExecutionContext.execute_v2()"; docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/
infer/Core/Profiler.html). :class:`LayerTimes` collects those calls the way trtexec's own
``Profiler::reportLayerTime`` does (NVIDIA/TensorRT ``samples/common/sampleReporting.cpp``): layers
arrive in engine order, and a report of the first layer's name starts a new inference.
:func:`make_trt_profiler` wraps it in a real ``tensorrt.IProfiler`` subclass (TensorRT is imported by
the caller, inside ``rtdeploy.trt``).

The writers produce exactly what trtexec writes:

* ``--exportProfile``: ``[ {"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, ... ]``
  — one entry per layer in engine order; ``timeMs`` is the sum over the N inferences, ``averageMs``
  and ``medianMs`` per inference, ``percentage`` the layer's share of all layers' time. Numbers are
  printed like C++ streams print floats (6 significant digits). The layout (``"[\\n  { ... }\\n, { ... }\\n]\\n"``,
  ``" : "`` between key and value) is trtexec's, so a line-based script reads ours as it reads theirs.
  One difference on purpose: layer names are JSON-escaped (trtexec writes them raw, which breaks the
  JSON for a name with a quote or backslash).
* ``--exportTimes``: one object per timed inference with ``startEnqMs``, ``endEnqMs``,
  ``startH2dMs``, ``endH2dMs``, ``startComputeMs``, ``endComputeMs``, ``startD2hMs``, ``endD2hMs``,
  ``h2dMs``, ``computeMs``, ``d2hMs``, ``latencyMs`` (milliseconds; stamps relative to the first
  timed inference).

:func:`read_profile` reads a trtexec (or our) profile back into per-layer times, so a layer table
(``rtdeploy inspect``) can show the time of each layer beside its precision.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_KEYS = ("name", "timeMs", "averageMs", "medianMs", "percentage")
TIMES_KEYS = ("startEnqMs", "endEnqMs", "startH2dMs", "endH2dMs", "startComputeMs", "endComputeMs",
              "startD2hMs", "endD2hMs", "h2dMs", "computeMs", "d2hMs", "latencyMs")


@dataclass
class LayerTimes:
    """Per-layer times reported by TensorRT, per inference, in engine order.

    Attributes:
        names: layer names in the order TensorRT reports them.
        times_ms: for each layer, its time in each inference.
        count: inferences seen (trtexec's ``count``).
    """

    names: list[str] = field(default_factory=list)
    times_ms: list[list[float]] = field(default_factory=list)
    count: int = 0
    _next: int = 0

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        """One layer's time in one inference (TensorRT's ``IProfiler.report_layer_time``)."""
        if self._next == len(self.names):  # past the last known layer: a new inference, or a new layer
            first = bool(self.names) and self.names[0] == layer_name
            if first or not self.names:
                self.count += 1
            if first:
                self._next = 0
            else:
                self.names.append(layer_name)
                self.times_ms.append([])
        self.times_ms[self._next].append(float(ms))
        self._next += 1

    def reset(self) -> None:
        """Forget everything (after warm-up, so only timed inferences count)."""
        self.names, self.times_ms, self.count, self._next = [], [], 0, 0

    def rows(self) -> list[dict]:
        """trtexec's per-layer records: ``name``, ``timeMs`` (total), ``averageMs``, ``medianMs``, ``percentage``."""
        totals = [math.fsum(t) for t in self.times_ms]
        grand = math.fsum(totals)
        return [{"name": n, "timeMs": tot, "averageMs": tot / len(t) if t else 0.0, "medianMs": _median(t),
                 "percentage": tot / grand * 100 if grand > 0 else 0.0}
                for n, t, tot in zip(self.names, self.times_ms, totals)]


def make_trt_profiler(trt, times: LayerTimes):
    """A ``trt.IProfiler`` that forwards every report to ``times`` (``trt``: the imported ``tensorrt`` module)."""

    class _Profiler(trt.IProfiler):
        def __init__(self):
            trt.IProfiler.__init__(self)  # the bindings require the base class to be initialised explicitly

        def report_layer_time(self, layer_name, ms):
            times.report_layer_time(layer_name, ms)

    return _Profiler()


def format_number(x: float | int) -> str:
    """A number as a C++ ``ostream`` prints it by default (``%g`` with 6 significant digits)."""
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return format(float(x), ".6g")


def profile_text(count: int, rows: list[dict]) -> str:
    """The text of a trtexec ``--exportProfile`` file for ``count`` inferences and per-layer ``rows``."""
    out = ["[", f'  {{ "count" : {int(count)} }}']
    for r in rows:
        body = ", ".join(f'"{k}" : ' + (json.dumps(r[k], ensure_ascii=False) if k == "name" else format_number(r[k]))
                         for k in PROFILE_KEYS)
        out.append(f", {{ {body} }}")
    return "\n".join(out) + "\n]\n"


def times_text(records: list[dict]) -> str:
    """The text of a trtexec ``--exportTimes`` file, one record per timed inference (keys :data:`TIMES_KEYS`)."""
    out = ["["]
    for i, r in enumerate(records):
        body = ", ".join(f'"{k}" : {format_number(r[k])}' for k in TIMES_KEYS)
        out.append(("  " if i == 0 else ", ") + f"{{ {body} }}")
    return "\n".join(out) + "\n]\n"


def trace_records(host_start_ms: list[float], host_end_ms: list[float], split_ms: dict[str, list[float]]) -> list[dict]:
    """``--exportTimes`` records from each call's host start/end and its CUDA-event H2D / compute / D2H times.

    The runner issues the copy in, the engine and the copy out back to back on one stream and
    waits for them in the same call, so the device stamps are the host start plus the chained
    event durations, and ``endEnqMs`` is the host time the call returned (enqueue and wait are one
    call here). Stamps are relative to the first inference's start.
    """
    if not host_start_ms:
        return []
    t0 = host_start_ms[0]
    out = []
    for i, (s, e) in enumerate(zip(host_start_ms, host_end_ms)):
        h2d, comp, d2h = split_ms["h2d"][i], split_ms["compute"][i], split_ms["d2h"][i]
        start = s - t0
        out.append({"startEnqMs": start, "endEnqMs": e - t0, "startH2dMs": start, "endH2dMs": start + h2d,
                    "startComputeMs": start + h2d, "endComputeMs": start + h2d + comp,
                    "startD2hMs": start + h2d + comp, "endD2hMs": start + h2d + comp + d2h,
                    "h2dMs": h2d, "computeMs": comp, "d2hMs": d2h, "latencyMs": h2d + comp + d2h})
    return out


def write_profile(path: str | os.PathLike, times: LayerTimes) -> Path:
    """Write ``times`` as a trtexec ``--exportProfile`` JSON file (atomically)."""
    return _write(path, profile_text(times.count, times.rows()))


def write_times(path: str | os.PathLike, records: list[dict]) -> Path:
    """Write per-inference records as a trtexec ``--exportTimes`` JSON file (atomically)."""
    return _write(path, times_text(records))


@dataclass(frozen=True)
class LayerProfile:
    """One layer of a trtexec profile."""

    name: str
    time_ms: float
    average_ms: float
    median_ms: float | None
    percentage: float


@dataclass(frozen=True)
class Profile:
    """A trtexec ``--exportProfile`` file: inferences profiled and per-layer times in engine order."""

    count: int
    layers: tuple[LayerProfile, ...]

    def average_ms(self) -> dict[str, float]:
        """Average time per inference of each layer, by layer name (what a layer table joins on)."""
        return {layer.name: layer.average_ms for layer in self.layers}


def parse_profile(data) -> Profile:
    """A :class:`Profile` from the parsed JSON of a profile file.

    ``medianMs`` is optional: trtexec before TensorRT 8.4 did not write it.

    Raises:
        ValueError: not a trtexec profile (says what was found).
    """
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or set(data[0]) != {"count"}:
        raise ValueError('not a trtexec profile: expected a JSON list starting with {"count": N}')
    layers = []
    for i, entry in enumerate(data[1:], start=1):
        missing = [k for k in PROFILE_KEYS if k != "medianMs" and k not in entry] if isinstance(entry, dict) else list(PROFILE_KEYS)
        if missing:
            raise ValueError(f"not a trtexec profile: entry {i} lacks {', '.join(missing)}")
        layers.append(LayerProfile(str(entry["name"]), float(entry["timeMs"]), float(entry["averageMs"]),
                                   float(entry["medianMs"]) if "medianMs" in entry else None, float(entry["percentage"])))
    return Profile(int(data[0]["count"]), tuple(layers))


def read_profile(path: str | os.PathLike) -> Profile:
    """Read a trtexec ``--exportProfile`` JSON file (or one ``rtdeploy bench --export-profile`` wrote).

    Raises:
        ValueError: the file is not valid JSON or not a profile (the message names the file).
    """
    try:
        return parse_profile(json.loads(Path(path).read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON ({e.msg} at line {e.lineno})") from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def _write(path, text: str) -> Path:
    from rtdeploy.files import write_text_atomic

    return write_text_atomic(Path(path), text)


def _median(values: list[float]) -> float:
    if not values:
        return 0.0
    xs = sorted(values)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) * 0.5
