"""All five ImageNet depths on this CPU: torch vs onnxruntime, FP32 and INT8, latency against GMACs.

Runs `rtdeploy bench` (through ``rtdeploy.api.bench``, the function the CLI calls) with every
configuration interleaved, and writes the report, its Markdown and its plot under
benchmarks/results/. The Markdown's "Latency against GMACs" table puts the measured latency ratios
next to the GMAC ratios (1.81 / 3.66 / 4.09 / 7.80 / 11.51 for ResNet-18/34/50/101/152).

    python benchmarks/sweep_cpu.py                          # the recorded run (about 5-8 minutes on 2 cores)
    python benchmarks/sweep_cpu.py --precision fp32 --duration 500ms --name quick --out /tmp

Equivalent command line:
    rtdeploy bench --depth all --backend torch,onnxruntime --precision fp32,int8 --batch 1,8 \\
        --warmup 300ms --duration 700ms --repeats 7 --threads 1 --json ... --markdown ... --plot ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", default="all")
    ap.add_argument("--backend", default="torch,onnxruntime")
    ap.add_argument("--precision", default="fp32,int8")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--warmup", default="300ms")
    # Many short windows: on a shared machine a burst of load then spoils a few windows, not the median.
    ap.add_argument("--duration", default="700ms")
    ap.add_argument("--repeats", type=int, default=7)
    # One thread: on 2 cores shared with other work, 2-thread torch/onnxruntime stall at their
    # thread-pool barriers whenever one thread is descheduled (seconds per ResNet-101 call at load 5).
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", default=None, help="artifact cache (default ~/.cache/rtdeploy/bench)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--name", default="sweep_cpu", help="basename of the .json/.md/.png written to --out")
    args = ap.parse_args(argv)

    from rtdeploy import api
    from rtdeploy.bench.report import terminal_table

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / args.name
    command = (f"rtdeploy bench --depth {args.depth} --backend {args.backend} --precision {args.precision} --batch {args.batch} "
               f"--warmup {args.warmup} --duration {args.duration} --repeats {args.repeats} --threads {args.threads}")
    result = api.bench(depth=args.depth, backend=args.backend, precision=args.precision, batch=args.batch, warmup=args.warmup,
                       duration=args.duration, repeats=args.repeats, threads=args.threads, workdir=args.workdir,
                       json=stem.with_suffix(".json"), markdown=stem.with_suffix(".md"), plot=stem.with_suffix(".png"),
                       progress=True, command=f"python benchmarks/sweep_cpu.py (= {command})")
    report = result.report
    print(terminal_table(report))
    for s in report["scaling"]:
        print(f"{s['runner']:<18} {s['precision']:<5} b{s['batch']:<3} {s['model']:<10} GMACs x{s['gmacs_ratio']:.2f}  "
              f"latency x{s['latency_ratio']:.2f} (fastest repeat x{s['fastest_ratio']:.2f})  per-GMAC {s['per_gmac_ratio']:.2f}")
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    for s in report["skipped"]:
        print(f"skipped {s['model']} {s['backend']} {s['precision']}: {s['reason']}", file=sys.stderr)
    for p in result.written:
        print(f"wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
