"""Timed windows -> result records: pooled statistics, median of repeats, device split, scaling.

The schema of these records is ``rtdeploy/bench/schema.json`` (documented in docs/bench.md).
"""

from __future__ import annotations

import math
from collections import defaultdict

from rtdeploy.bench.harness import SPLIT_PARTS, Window
from rtdeploy.bench.stats import noise_warnings, summarize, summarize_repeats, throughput

SCHEMA_ID = "rtdeploy.bench/2"


def result_record(identity: dict, batch: int, windows: list[Window], settings: dict) -> tuple[dict, list[str]]:
    """The record of one configuration and its noise warnings.

    Args:
        identity: ``id``, ``model``, ``depth``, ``family``, ``gmacs``, ``backend``, ``runner``,
            ``precision``, ``device``, ``artifact``.
        batch: images per inference.
        windows: its timed windows, one per repeat.
        settings: the per-configuration settings that change numbers.
    """
    pooled = summarize([t for w in windows for t in w.host_ms])
    per_repeat = []
    for w in windows:
        s = summarize(w.host_ms)
        per_repeat.append({"count": s.count, "median_ms": s.median, "mean_ms": s.mean, "wall_ms": w.elapsed_ms,
                           "throughput_ips": throughput(batch, s.count, w.elapsed_ms)})
    rep = summarize_repeats([r["median_ms"] for r in per_repeat], [r["throughput_ips"] for r in per_repeat])
    streams = len(windows[0].stream_counts or [0])
    record = {
        **identity, "batch": batch, "streams": streams, "settings": settings,
        "latency_ms": rep.median_ms, "throughput_ips": rep.throughput_ips,
        "repeat_spread": rep.spread, "repeat_low_ms": rep.low_ms, "repeat_high_ms": rep.high_ms,
        "throughput_window": throughput_window(batch, windows),
        "host_ms": pooled.to_dict(), "per_stream": _per_stream(windows), "repeats": per_repeat,
        "device_ms": None, "split_ms": _split(windows),
    }
    if record["split_ms"] is not None:
        record["device_ms"] = record["split_ms"]["compute"]
    warnings = noise_warnings(identity["id"], pooled, rep if len(windows) > 1 else None)
    record["warnings"] = warnings
    return record, warnings


def throughput_window(batch: int, windows: list[Window]) -> dict:
    """Images completed over the measured wall time of all timed windows together (every stream).

    ``latency_equivalent_ms`` is the time per inference per stream that this throughput implies
    (``streams * batch * 1000 / ips``): for one stream it is the mean latency plus the loop's own
    cost, so it sits inside the latency distribution; a value far above the mean latency means time
    went somewhere between inferences.
    """
    images = batch * sum(w.count for w in windows)
    wall = math.fsum(w.elapsed_ms for w in windows)
    ips = throughput(batch, images // batch, wall)
    streams = len(windows[0].stream_counts or [0])
    return {"images": images, "wall_ms": wall, "ips": ips,
            "latency_equivalent_ms": streams * batch * 1000.0 / ips if ips > 0 else None}


def _per_stream(windows: list[Window]) -> list[dict]:
    """Latency statistics of each stream, pooled over the windows (a single entry for one stream)."""
    n = len(windows[0].stream_counts or [0])
    out = []
    for i in range(n):
        xs = [t for w in windows for t in w.stream_host_ms()[i]]
        st = summarize(xs)
        out.append({"stream": i, "count": st.count, "median_ms": st.median, "mean_ms": st.mean, "p90_ms": st.p90,
                    "p99_ms": st.p99})
    return out


def _variant(r: dict) -> tuple:
    """What tells apart artifacts of one precision across depths: INT8's calibrator and kept-layer count."""
    q = r.get("quantization") or {}
    return q.get("calibrator"), len(q.get("kept_fp") or [])


def _split(windows: list[Window]) -> dict | None:
    if not all(w.split_ms for w in windows):
        return None
    return {p: summarize([t for w in windows for t in w.split_ms[p]]).to_dict() for p in SPLIT_PARTS}


def scaling_table(results: list[dict]) -> list[dict]:
    """Latency ratios across depths next to the GMAC ratios, per backend / precision / batch series.

    Each series with two or more depths is compared with its smallest model: ``gmacs_ratio`` is
    the cost the architecture predicts, ``latency_ratio`` the cost measured (median of repeats),
    ``fastest_ratio`` the same from each model's fastest repeat (on a shared machine, the repeat
    least disturbed by other work: noise only ever adds time), and ``per_gmac_ratio`` the quotient
    of latency and GMAC ratios (1.0: latency grows exactly with GMACs; above 1: the deeper model
    costs more per GMAC than the smallest).
    """
    series: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        if r.get("gmacs"):
            series[(r["backend"], r["runner"], r["precision"], r["batch"], r.get("streams", 1), _variant(r))].append(r)
    rows = []
    for (backend, runner, precision, batch, _streams, _v), items in series.items():
        items = sorted(items, key=lambda r: r["gmacs"])
        if len({r["depth"] for r in items}) < 2:
            continue
        base = items[0]
        for r in items:
            g = r["gmacs"] / base["gmacs"]
            lat = r["latency_ms"] / base["latency_ms"]
            rows.append({"backend": backend, "runner": runner, "precision": precision, "batch": batch,
                         "streams": r.get("streams", 1), "label": r.get("label", r["model"]),
                         "model": r["model"], "depth": r["depth"], "gmacs": r["gmacs"], "latency_ms": r["latency_ms"],
                         "fastest_ms": r["repeat_low_ms"], "gmacs_ratio": round(g, 4), "latency_ratio": round(lat, 4),
                         "fastest_ratio": round(r["repeat_low_ms"] / base["repeat_low_ms"], 4), "per_gmac_ratio": round(lat / g, 4)})
    return rows
