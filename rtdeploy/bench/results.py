"""Timed windows -> result records: pooled statistics, median of repeats, device split, scaling.

The schema of these records is ``rtdeploy/bench/schema.json`` (documented in docs/bench.md).
"""

from __future__ import annotations

from collections import defaultdict

from rtdeploy.bench.harness import SPLIT_PARTS, Window
from rtdeploy.bench.stats import noise_warnings, summarize, summarize_repeats, throughput

SCHEMA_ID = "rtdeploy.bench/1"


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
        per_repeat.append({"count": s.count, "median_ms": s.median, "mean_ms": s.mean,
                           "throughput_ips": throughput(batch, s.count, w.elapsed_ms)})
    rep = summarize_repeats([r["median_ms"] for r in per_repeat], [r["throughput_ips"] for r in per_repeat])
    record = {
        **identity, "batch": batch, "settings": settings,
        "latency_ms": rep.median_ms, "throughput_ips": rep.throughput_ips,
        "repeat_spread": rep.spread, "repeat_low_ms": rep.low_ms, "repeat_high_ms": rep.high_ms,
        "host_ms": pooled.to_dict(), "repeats": per_repeat,
        "device_ms": None, "split_ms": _split(windows),
    }
    if record["split_ms"] is not None:
        record["device_ms"] = record["split_ms"]["compute"]
    warnings = noise_warnings(identity["id"], pooled, rep if len(windows) > 1 else None)
    record["warnings"] = warnings
    return record, warnings


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
            series[(r["backend"], r["runner"], r["precision"], r["batch"])].append(r)
    rows = []
    for (backend, runner, precision, batch), items in series.items():
        items = sorted(items, key=lambda r: r["gmacs"])
        if len({r["depth"] for r in items}) < 2:
            continue
        base = items[0]
        for r in items:
            g = r["gmacs"] / base["gmacs"]
            lat = r["latency_ms"] / base["latency_ms"]
            rows.append({"backend": backend, "runner": runner, "precision": precision, "batch": batch,
                         "model": r["model"], "depth": r["depth"], "gmacs": r["gmacs"], "latency_ms": r["latency_ms"],
                         "fastest_ms": r["repeat_low_ms"], "gmacs_ratio": round(g, 4), "latency_ratio": round(lat, 4),
                         "fastest_ratio": round(r["repeat_low_ms"] / base["repeat_low_ms"], 4), "per_gmac_ratio": round(lat / g, 4)})
    return rows
