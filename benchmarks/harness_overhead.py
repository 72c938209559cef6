"""Harness overhead: `rtdeploy bench`'s timing machinery against a bare `session.run` loop.

Both time the same onnxruntime CPU session (ResNet-50, batch 1) in this process, in alternating
windows (harness, bare, bare, harness, ...) so a change in machine load falls on both alike. The
harness window is exactly what `rtdeploy bench` runs per window: ``OrtRunner.infer`` under
``harness.time_window`` (a clock read before and after each call, a list append, the GC paused).
The bare window is ``session.run`` in a plain ``for`` loop, timed once around the whole loop.

Windows are short (a few iterations) and many, so the load other processes put on a shared machine
changes little within a pair. Compared per pair: wall time per iteration (window time / iterations)
of harness over bare; the result is the median of those ratios, with their range, and the ratio of
the total times as a second estimate. Target: median ratio <= 1.02.

    python benchmarks/harness_overhead.py --threads 1     # writes benchmarks/results/harness_overhead.{json,md}
    python benchmarks/harness_overhead.py --pairs 5 --iterations 10 --out /tmp
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def bare_window(session, name: str, x: np.ndarray, iterations: int) -> float:
    """Milliseconds per iteration of a plain session.run loop."""
    run, feed = session.run, {name: x}
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for _ in range(iterations):
            run(None, feed)
        t1 = time.perf_counter_ns()
    finally:
        gc.enable()
    return (t1 - t0) / 1e6 / iterations


def measure(meta, workdir: Path, pairs: int, iterations: int, threads: int) -> list[dict]:
    """Alternating harness / bare windows on one onnxruntime CPU session of ``meta``."""
    from rtdeploy.bench.harness import HostTimer, time_window, warm_up
    from rtdeploy.bench.prepare import exported_onnx
    from rtdeploy.bench.stats import summarize
    from rtdeploy.runners.ort_runner import OrtRunner

    onnx = exported_onnx(meta, workdir)
    x = np.random.default_rng(0).standard_normal(meta.input_shape(1), dtype=np.float32)
    rows = []
    with OrtRunner(onnx, threads=threads) as runner:
        timer = HostTimer(runner, {meta.input_name: x})
        warm_up(timer, 2.0)
        for i in range(pairs):
            order = ("harness", "bare") if i % 2 == 0 else ("bare", "harness")
            row = {}
            for which in order:
                if which == "harness":
                    w = time_window(timer, iterations=iterations, duration_s=0)
                    row["harness_ms"] = w.elapsed_ms / len(w.host_ms)
                    row["harness_median_ms"] = summarize(w.host_ms).median
                else:
                    row["bare_ms"] = bare_window(runner.session, meta.input_name, x, iterations)
            row["ratio"] = row["harness_ms"] / row["bare_ms"]
            rows.append(row)
            print(f"{meta.name} pair {i + 1}/{pairs}: harness {row['harness_ms']:.3f} ms  bare {row['bare_ms']:.3f} ms  "
                  f"ratio {row['ratio']:.4f}", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--pairs", type=int, default=60, help="harness/bare window pairs")
    ap.add_argument("--iterations", type=int, default=3, help="iterations per window")
    ap.add_argument("--tiny-pairs", type=int, default=40, help="window pairs on CIFAR ResNet-20")
    ap.add_argument("--tiny-iterations", type=int, default=100, help="iterations per ResNet-20 window")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    ap.add_argument("--workdir", type=Path, default=None, help="artifact cache (default ~/.cache/rtdeploy/bench)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for the .json and .md results")
    ap.add_argument("--name", default="harness_overhead", help="basename of the results")
    args = ap.parse_args(argv)

    from rtdeploy.files import write_json_atomic, write_text_atomic
    from rtdeploy.machine import describe, load_average
    from rtdeploy.bench.options import default_workdir
    from rtdeploy.bench.stats import percentile
    from rtdeploy.models import model_meta

    env = describe("cpu")
    workdir = args.workdir or default_workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    meta = model_meta(args.depth)
    rows = measure(meta, workdir, args.pairs, args.iterations, args.threads)
    # The same comparison on CIFAR ResNet-20 (about 1 ms a call), where a per-call cost of the
    # harness would show plainly: its absolute size in microseconds bounds the ratio for any model.
    tiny = measure(model_meta(20), workdir, args.tiny_pairs, args.tiny_iterations, args.threads)
    env["load_average_end"] = load_average()
    ratios = sorted(r["ratio"] for r in rows)
    tiny_delta_us = percentile(sorted((r["harness_ms"] - r["bare_ms"]) * 1e3 for r in tiny), 50)
    result = {
        "benchmark": "harness_overhead", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": meta.name, "backend": "onnxruntime[CPU]", "batch": 1, "threads": args.threads,
        "pairs": args.pairs, "iterations_per_window": args.iterations,
        "median_ratio": percentile(ratios, 50), "min_ratio": ratios[0], "max_ratio": ratios[-1],
        "total_ratio": sum(r["harness_ms"] for r in rows) / sum(r["bare_ms"] for r in rows),
        "harness_ms_median": percentile(sorted(r["harness_ms"] for r in rows), 50),
        "bare_ms_median": percentile(sorted(r["bare_ms"] for r in rows), 50),
        "target": "median_ratio <= 1.02", "passed": percentile(ratios, 50) <= 1.02,
        "tiny_model": "resnet20", "tiny_pairs": args.tiny_pairs, "tiny_iterations_per_window": args.tiny_iterations,
        "tiny_median_ratio": percentile(sorted(r["ratio"] for r in tiny), 50),
        "tiny_bare_ms_median": percentile(sorted(r["bare_ms"] for r in tiny), 50),
        "tiny_overhead_us_median": tiny_delta_us,
        "environment": env, "pairs_detail": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / f"{args.name}.json", result)
    write_text_atomic(args.out / f"{args.name}.md", markdown(result))
    print(markdown(result))
    return 0 if result["passed"] else 1


def markdown(r: dict) -> str:
    env = r["environment"]
    la = lambda v: "/".join(f"{x:.2f}" for x in v) if v else "unknown"  # noqa: E731
    return "\n".join([
        "# Harness overhead", "",
        f"{r['model']}, {r['backend']}, batch {r['batch']}, threads {r['threads'] or 'default'}, {r['pairs']} alternating pairs of {r['iterations_per_window']}-iteration windows "
        "on one session in one process (`python benchmarks/harness_overhead.py`).", "",
        "| | ms per iteration (median over windows) |", "|---|---|",
        f"| `rtdeploy bench` harness (OrtRunner.infer under time_window) | {r['harness_ms_median']:.2f} |",
        f"| bare `session.run` loop | {r['bare_ms_median']:.2f} |", "",
        f"**Median ratio harness / bare: {r['median_ratio']:.4f}** (pairs range {r['min_ratio']:.4f} .. {r['max_ratio']:.4f}; "
        f"target <= 1.02: {'met' if r['passed'] else 'NOT met'}); ratio of total times {r['total_ratio']:.4f}.", "",
        f"Per-call cost of the harness, measured the same way on {r['tiny_model']} ({r['tiny_bare_ms_median']:.3f} ms a call, "
        f"{r['tiny_pairs']} pairs of {r['tiny_iterations_per_window']} iterations): median {r['tiny_overhead_us_median']:.1f} us "
        f"(median ratio {r['tiny_median_ratio']:.4f}), i.e. {r['tiny_overhead_us_median'] / 1e3 / r['bare_ms_median'] * 100:.3f}% "
        f"of a {r['model']} call.", "",
        f"Machine: {env['cpu_model']}, {env['usable_cores']} usable cores, load average {la(env['load_average_start'])} at start, "
        f"{la(env['load_average_end'])} at end; {', '.join(f'{k} {v}' for k, v in env['versions'].items())}. Run {r['created']}.", "",
    ])


if __name__ == "__main__":
    sys.exit(main())
