"""All five ImageNet depths on this CPU: torch vs onnxruntime, FP32 and INT8, latency against GMACs;
then onnxruntime CPU throughput against concurrent streams.

Runs `rtdeploy bench` (through ``rtdeploy.api.bench``, the function the CLI calls) with every
configuration interleaved and the default stop rule (200 ms warm-up, then at least 1 s and at least
20 iterations per window on CPU), and writes each report, its Markdown and its plot under
benchmarks/results/. The Markdown's "Latency against GMACs" table puts the measured latency ratios
next to the GMAC ratios (1.81 / 3.66 / 4.09 / 7.80 / 11.51 for ResNet-18/34/50/101/152); the streams
report's "Throughput against streams" table gives aggregate images/s against 1, 2 and 4 streams
(one onnxruntime session per stream, each on its own thread, one intra-op thread each).

    python benchmarks/sweep_cpu.py                          # the recorded runs
    python benchmarks/sweep_cpu.py --precision fp32 --duration 500ms --name quick --out /tmp --no-streams

Equivalent command lines:
    rtdeploy bench --depth all --backend torch,onnxruntime --precision fp32,int8 --batch 1 --threads 1 \\
        --json ... --markdown ... --plot ...
    rtdeploy bench --depth 18,50 --backend onnxruntime --precision fp32,int8 --batch 1 --threads 1 --streams 1,2,4 ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(api, *, command: str, stem: Path, **kw):
    from rtdeploy.bench.report import terminal_table

    out = lambda ext: stem.parent / f"{stem.name}{ext}"  # noqa: E731 - stems contain dots (sweep_cpu.streams)
    result = api.bench(json=out(".json"), markdown=out(".md"), plot=out(".png"),
                       progress=True, command=f"python benchmarks/sweep_cpu.py (= {command})", **kw)
    report = result.report
    print(terminal_table(report))
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    for s in report["skipped"]:
        print(f"skipped {s['model']} {s['backend']} {s['precision']}: {s['reason']}", file=sys.stderr)
    for p in result.written:
        print(f"wrote {p}", file=sys.stderr)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", default="all")
    ap.add_argument("--backend", default="torch,onnxruntime")
    ap.add_argument("--precision", default="fp32,int8")
    ap.add_argument("--batch", default="1")
    ap.add_argument("--duration", default=None, help="minimum window length (default: the stop rule's 1 s)")
    ap.add_argument("--repeats", type=int, default=3)
    # One thread: on 2 cores shared with other work, 2-thread torch/onnxruntime stall at their
    # thread-pool barriers whenever one thread is descheduled (seconds per ResNet-101 call at load 5).
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--streams-depth", default="18,50")
    ap.add_argument("--streams", default="1,2,4")
    ap.add_argument("--no-streams", action="store_true", help="skip the streams run")
    ap.add_argument("--workdir", default=None, help="artifact cache (default ~/.cache/rtdeploy/bench)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--name", default="sweep_cpu", help="basename of the .json/.md/.png written to --out")
    args = ap.parse_args(argv)

    from rtdeploy import api

    args.out.mkdir(parents=True, exist_ok=True)
    length = f" --duration {args.duration}" if args.duration else ""
    common = dict(batch=args.batch, duration=args.duration, repeats=args.repeats, threads=args.threads, workdir=args.workdir)
    report = run(api, stem=args.out / args.name, depth=args.depth, backend=args.backend, precision=args.precision,
                 command=(f"rtdeploy bench --depth {args.depth} --backend {args.backend} --precision {args.precision} "
                          f"--batch {args.batch}{length} --repeats {args.repeats} --threads {args.threads}"), **common)
    for s in report["scaling"]:
        print(f"{s['label']:<28} {s['runner']:<18} b{s['batch']:<3} GMACs x{s['gmacs_ratio']:.2f}  "
              f"latency x{s['latency_ratio']:.2f} (fastest repeat x{s['fastest_ratio']:.2f})  per-GMAC {s['per_gmac_ratio']:.2f}")
    if not args.no_streams:
        run(api, stem=args.out / f"{args.name}.streams", depth=args.streams_depth, backend="onnxruntime",
            precision=args.precision, streams=args.streams,
            command=(f"rtdeploy bench --depth {args.streams_depth} --backend onnxruntime --precision {args.precision} "
                     f"--batch {args.batch}{length} --repeats {args.repeats} --threads {args.threads} --streams {args.streams}"),
            **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
