"""PyTorch on a CUDA GPU per depth: eager, channels_last, FP16 autocast and torch.compile, timed with CUDA events.

Every (depth, variant, precision, batch) configuration is timed by rtdeploy's harness in one
interleaved run: host wall time per inference, and from CUDA events the device time of the
host-to-device copy, the forward pass and the device-to-host copy (``device_ms`` is the forward
pass). Needs a CUDA build of torch and an NVIDIA GPU.

    python benchmarks/gpu_torch.py                                 # writes benchmarks/results/gpu_torch.{json,md,png}
    python benchmarks/gpu_torch.py --depth 18,50 --batch 1,32 --no-compile --duration 500ms
    python benchmarks/gpu_torch.py --depth 50 --batch 32 --variants compile --iterations 10   # one step of the GPU kit
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (channels_last, compile) variants by name; each is timed in FP32 and FP16 autocast.
VARIANTS = {"eager": (False, False), "channels_last": (True, False), "compile": (True, True)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", default="all")
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--precision", default="fp32,fp16")
    ap.add_argument("--warmup", default="500ms")
    ap.add_argument("--duration", default="1s")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iterations", default=None, help="minimum timed iterations per window (default: the CUDA default, 200)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (it compiles each model first)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--name", default="gpu_torch")
    args = ap.parse_args(argv)

    from rtdeploy.bench import backends as be
    from rtdeploy.bench.options import BenchConfig
    from rtdeploy.bench.report import markdown, terminal_table, write_outputs
    from rtdeploy.bench.sweep import Slot, run_slots
    from rtdeploy.errors import RtDeployError
    from rtdeploy.models import get_model

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / args.name
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not names or any(v not in VARIANTS for v in names):
        ap.error(f"--variants {args.variants!r}: give a comma list of {', '.join(VARIANTS)}")
    try:
        cfg = BenchConfig(depth=args.depth, backend="torch", precision=args.precision, device="cuda", batch=args.batch,
                          warmup=args.warmup, duration=args.duration, repeats=args.repeats, iterations=args.iterations,
                          progress=True)
        cfg.check()
        be.check_installed("torch")
        be.check_device(("torch",), "cuda")
    except RtDeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    variants = [VARIANTS[v] for v in names if not (args.no_compile and VARIANTS[v][1])]
    slots = [Slot(get_model(name).meta(), "torch", p, cfg.batch, channels_last=cl, compile=comp)
             for name in cfg.names for cl, comp in variants for p in cfg.precision]
    report = run_slots(slots, cfg, command="python benchmarks/gpu_torch.py " + " ".join(argv or sys.argv[1:]))
    write_outputs(report, json=stem.with_suffix(".json"), markdown_path=stem.with_suffix(".md"), plot=stem.with_suffix(".png"))
    print(terminal_table(report))
    print(markdown(report).split("## Latency against GMACs")[-1] if report["scaling"] else "")
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
