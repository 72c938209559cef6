"""Time `export` and `validate` per ResNet depth on this machine; write JSON and Markdown results.

    python benchmarks/export_validate.py                       # ImageNet 18..152 at 224, CIFAR 20 and 56
    python benchmarks/export_validate.py --depths 18,50 --samples 8

Each depth is exported to a temporary folder with the library call behind `rtdeploy export`, then
validated with the one behind `rtdeploy validate` (onnxruntime vs the PyTorch model rebuilt from the
manifest, on random inputs). Times are wall-clock seconds in one warm process (Python start-up and
imports are timed once, separately); CPU seconds are recorded too, because on a shared machine a
wall time well above the CPU time means the run waited for the processor.

Goal (issue 2): all five ImageNet depths exported and validated in <= 60 s in total on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from record import machine as record_machine, save  # beside this script
from rtdeploy.machine import load_average

HERE = Path(__file__).resolve().parent
GOAL_S = 60.0


def main() -> None:
    args = _parse()
    t0 = time.perf_counter()
    import onnx  # noqa: F401  (imported here so the first depth is not charged for it)
    import onnxruntime  # noqa: F401
    import torch

    from rtdeploy.export import ExportConfig, export_onnx
    from rtdeploy.validate import ValidateConfig, validate_model
    from rtdeploy.validate.run import DEFAULT_RANDOM_SAMPLES
    import_s = time.perf_counter() - t0

    machine = record_machine("torch", "onnx", "onnxruntime", "numpy", torch_threads=torch.get_num_threads())
    args.samples = args.samples or DEFAULT_RANDOM_SAMPLES
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for depth in args.depths:
            out = Path(tmp) / f"resnet{depth}.onnx"
            export_s, export_cpu, result = _timed(lambda: export_onnx(ExportConfig(depth=depth, output=out)))
            cfg = ValidateConfig(model=out, samples=args.samples, batch=args.batch)
            validate_s, validate_cpu, report = _timed(lambda: validate_model(cfg))
            row = {
                "depth": depth, "family": result.meta.family, "image_size": result.meta.image_size,
                "onnx_mb": round(result.manifest["bytes"] / 1e6, 1),
                "export_s": round(export_s, 2), "export_cpu_s": round(export_cpu, 2),
                "validate_s": round(validate_s, 2), "validate_cpu_s": round(validate_cpu, 2),
                "total_s": round(export_s + validate_s, 2), "passed": report.passed,
                "max_abs_err_of_range": report.sets[0].outputs[result.meta.output_name]["max_abs_err_of_range"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    imagenet = [r for r in rows if r["family"] == "imagenet"]
    summary = {
        "imagenet_total_s": round(sum(r["total_s"] for r in imagenet), 2),
        "imagenet_total_cpu_s": round(sum(r["export_cpu_s"] + r["validate_cpu_s"] for r in imagenet), 2),
        "imagenet_depths": [r["depth"] for r in imagenet],
        "goal_s": GOAL_S,
        "import_s": round(import_s, 2),
    }
    summary["meets_goal"] = len(imagenet) == 5 and summary["imagenet_total_s"] <= GOAL_S
    machine["load_average_after"] = load_average()
    result = {"machine": machine, "settings": {"samples": args.samples, "batch": args.batch, "opset": 17},
              "summary": summary, "rows": rows, "note": args.note}
    save(result, args.out, _markdown)
    print(f"ImageNet total {summary['imagenet_total_s']} s (goal <= {GOAL_S:.0f} s); wrote {args.out.with_suffix('.json')} and .md")


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", default="18,34,50,101,152,20,56", type=lambda s: [int(d) for d in s.split(",")])
    p.add_argument("--samples", type=int, default=None, help="random validation samples (default: validate's default)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, default=HERE / "results" / "export_validate")
    p.add_argument("--note", default="", help="free text recorded with the results (e.g. machine load)")
    return p.parse_args()


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def _markdown(r: dict) -> str:
    m, s = r["machine"], r["summary"]
    lines = [
        "# export + validate time per depth",
        "",
        f"{m['date']} · {m['cpu']} · {m['cores']} cores · load average {m['load_average_before']} before, "
        f"{m['load_average_after']} after · Python {m['python']}, torch {m['torch']}, onnx {m['onnx']}, "
        f"onnxruntime {m['onnxruntime']}",
        "",
        f"validate: {r['settings']['samples']} random samples, batch {r['settings']['batch']}, "
        "onnxruntime CPU vs PyTorch CPU. Seconds are wall time in one warm process; "
        f"imports (torch, onnx, onnxruntime, rtdeploy) took {s['import_s']} s once.",
        "",
        "| depth | family | input | ONNX MB | export s (cpu) | validate s (cpu) | total s | passed |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['depth']} | {row['family']} | {row['image_size']} | {row['onnx_mb']} | "
                     f"{row['export_s']} ({row['export_cpu_s']}) | {row['validate_s']} ({row['validate_cpu_s']}) | "
                     f"{row['total_s']} | {'yes' if row['passed'] else 'NO'} |")
    verdict = "meets" if s["meets_goal"] else "misses"
    lines += ["", f"All five ImageNet depths: **{s['imagenet_total_s']} s** wall ({s['imagenet_total_cpu_s']} s CPU); "
              f"this {verdict} the goal of <= {s['goal_s']:.0f} s.", ""]
    if r["note"]:
        lines += [f"Note: {r['note']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
