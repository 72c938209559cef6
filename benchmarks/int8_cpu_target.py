"""INT8 for onnxruntime's CPU kernels (``quantize --int8 --target onnxruntime-cpu``): speed and accuracy.

    python benchmarks/int8_cpu_target.py                       # speed (ResNet-50) + accuracy (ResNet-56, -20)
    python benchmarks/int8_cpu_target.py --sections speed --rounds 9

Speed: ResNet-50 at 224x224 (seed-0 weights: weights do not change the cost), onnxruntime CPU with
default session options (all graph optimizations, default threads), batch 1 and batch 8. Models:
FP32, our CPU-target INT8, our TensorRT-target INT8 (what users got on CPU before) and onnxruntime's
own ``quantize_static`` with its CPU defaults (QDQ, uint8 activations, int8 per-channel weights).
Interleaved: every round runs each model ``--iters`` times in turn, in a rotated order; a round's
throughput is images / the median run time, and a round's ratio compares two models within that
round. Reported: median ratio over rounds, its min and max, and the sample counts. The calibration
for speed uses the bundled ``calib_data/`` photos (scales do not change the cost).

Accuracy: the real CIFAR-10 ResNets from ../shared/data/cifar10 (or $RTDEPLOY_CIFAR10), calibrated on
the 1,000 ``calib/`` images, evaluated on the 3,000 ``dev/`` images with the library call behind
``rtdeploy validate`` (onnxruntime CPU, all optimizations on, so the CPU target runs on the integer
kernels). Compared with onnxruntime ``quantize_static`` with its CPU defaults and with the symmetric
int8 setting of ``benchmarks/precision_accuracy.py``, and with our TensorRT-target INT8. One analysis
row quantizes the weights over the full -127..127 range, to show why the CPU target uses -63..63.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from dev_accuracy import evaluate, evaluate_foreign  # beside this script
from record import cifar10_root, machine, save

import numpy as np

from rtdeploy.machine import load_average

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTIONS = ("speed", "accuracy")
TARGET_RATIO = 1.8


def main() -> None:
    args = _parse()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = args.out
    result = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    if "speed" in result and "command" not in result["speed"]:  # each section keeps the command that measured it
        result["speed"]["command"] = result["settings"]["command"]
    result["machine"] = machine("onnxruntime", "numpy")
    result["settings"] = {"command": " ".join(sys.argv), "rounds": args.rounds, "iters": args.iters,
                          "batches": args.batches, "sections": args.sections}
    if "speed" in args.sections:
        result["speed"] = {**_speed(work, args), "command": " ".join(sys.argv)}
        save(result, out, _markdown)
    if "accuracy" in args.sections:
        root = cifar10_root()
        result["accuracy"] = {str(d): _accuracy(d, root, work) for d in args.depths}
        result["accuracy_command"] = " ".join(sys.argv)
    result["machine"]["load_average_after"] = load_average()
    save(result, out, _markdown)
    print(_markdown(result))


# --- speed ---------------------------------------------------------------------------------------------

def _speed(work: Path, args) -> dict:
    from rtdeploy import api

    fp32 = work / "r50.onnx"
    if not fp32.exists():
        api.export(depth=50, output=fp32)
    models = {
        "fp32": fp32,
        "int8 onnxruntime-cpu": api.quantize(fp32, int8=True, target="onnxruntime-cpu", output=work / "r50.cpu.int8.onnx").path,
        "int8 tensorrt": api.quantize(fp32, int8=True, weights="nearest", output=work / "r50.trt.int8.onnx").path,
        "onnxruntime quantize_static (CPU defaults)": _ort_static(fp32, work / "r50.ort.int8.onnx", _bundled_calib(), symmetric=False),
    }
    out = {"model": "ResNet-50 224x224, seed-0 weights", "load_average_before": load_average(), "batches": {}}
    for batch in args.batches:
        out["batches"][str(batch)] = _interleaved(models, batch, args.rounds, args.iters)
        print(json.dumps({"batch": batch, **out["batches"][str(batch)]["ratios_vs_fp32"]}), flush=True)
    out["load_average_after"] = load_average()
    return out


def _interleaved(models: dict, batch: int, rounds: int, iters: int) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sessions = {k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for k, p in models.items()}
    name = next(iter(sessions.values())).get_inputs()[0].name
    x = np.random.default_rng(0).normal(0, 1, (batch, 3, 224, 224)).astype(np.float32)
    for s in sessions.values():  # warm-up: first runs allocate and pack weights
        s.run(None, {name: x})
    keys = list(sessions)
    per_round: dict[str, list[float]] = {k: [] for k in keys}
    runs: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for k in order:
            times = []
            for _ in range(iters):
                t = time.perf_counter()
                sessions[k].run(None, {name: x})
                times.append(time.perf_counter() - t)
            runs[k].extend(times)
            per_round[k].append(batch / statistics.median(times))
    throughput = {k: _spread(v) for k, v in per_round.items()}
    ratios = {k: _spread([a / b for a, b in zip(per_round[k], per_round["fp32"])]) for k in keys if k != "fp32"}
    ours, theirs = "int8 onnxruntime-cpu", "onnxruntime quantize_static (CPU defaults)"
    head_to_head = _spread([a / b for a, b in zip(per_round[ours], per_round[theirs])]) if ours in keys and theirs in keys else None
    return {"batch": batch, "rounds": rounds, "runs_per_round": iters, "samples_per_model": len(runs["fp32"]),
            "throughput_img_s": throughput, "ratios_vs_fp32": {k: v["median"] for k, v in ratios.items()},
            "ratio_spread": ratios, "cpu_target_vs_quantize_static": head_to_head, "load_average": load_average()}


def _spread(v: list[float]) -> dict:
    return {"median": round(statistics.median(v), 3), "min": round(min(v), 3), "max": round(max(v), 3), "n": len(v)}


def _bundled_calib() -> Path:
    return REPO / "rtdeploy" / "calib_data"


# --- accuracy ------------------------------------------------------------------------------------------

def _accuracy(depth: int, root: Path, work: Path) -> dict:
    from rtdeploy import api

    weights = sorted((root / "weights").glob(f"resnet{depth}-*.th"))[0]
    fp32 = api.export(depth=depth, weights=weights, output=work / f"c{depth}.onnx").path
    calib, dev = root / "calib", root / "dev"
    rows = []

    def add(label: str, path: Path, foreign: bool = False, **extra) -> None:
        row = {"config": label, **extra, **(evaluate_foreign(path, fp32, dev) if foreign else evaluate(path, dev))}
        rows.append(row)
        print(json.dumps({"depth": depth, **row}), flush=True)

    for method in ("entropy", "mse", "percentile"):
        t = time.perf_counter()
        r = api.quantize(fp32, int8=True, calib_dir=calib, method=method, target="onnxruntime-cpu",
                         output=work / f"c{depth}.{method}.cpu.int8.onnx")
        add(f"rtdeploy --target onnxruntime-cpu --method {method}", r.path, seconds=round(time.perf_counter() - t, 1))
    r = api.quantize(fp32, int8=True, calib_dir=calib, method="entropy", weights="nearest", output=work / f"c{depth}.entropy.trt.int8.onnx")
    add("rtdeploy --target tensorrt --method entropy (float convolutions on CPU)", r.path)
    for symmetric in (False, True):
        label = "symmetric int8 activations" if symmetric else "CPU defaults: uint8 activations"
        out = _ort_static(fp32, work / f"c{depth}.ort{'-sym' if symmetric else ''}.int8.onnx", calib, symmetric=symmetric)
        add(f"onnxruntime quantize_static MinMax ({label})", out, foreign=True)
    add("cross-check: the --method mse CPU target through the direct onnxruntime evaluation of the rows above",
        work / f"c{depth}.mse.cpu.int8.onnx", foreign=True)
    add("analysis: CPU target, entropy, weights over -127..127 (internal call)", _full_range_variant(fp32, calib, work, depth))
    return {"weights": weights.name, "rows": rows}


def _full_range_variant(fp32: Path, calib: Path, work: Path, depth: int) -> Path:
    """The CPU target with weights quantized over -127..127 (the statistics come from the cache)."""
    from rtdeploy import api
    from rtdeploy.precision.int8 import cpu_target

    saved = cpu_target.WEIGHT_LEVELS
    try:
        cpu_target.quantize_weight_cpu.__defaults__ = (127,)
        return api.quantize(fp32, int8=True, calib_dir=calib, method="entropy", target="onnxruntime-cpu",
                            output=work / f"c{depth}.entropy.cpu-w127.int8.onnx").path
    finally:
        cpu_target.quantize_weight_cpu.__defaults__ = (saved,)


def _ort_static(fp32: Path, out: Path, calib: Path, *, symmetric: bool) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    from rtdeploy.artifacts import read_manifest
    from rtdeploy.data import open_source
    from rtdeploy.models import ModelMeta

    parent = read_manifest(fp32)
    meta = ModelMeta.from_dict(parent["model"])
    source = open_source(calib, meta)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = (b.images for b in source.batches(50))

        def get_next(self):
            images = next(self.batches, None)
            return None if images is None else {meta.input_name: images}

    act = QuantType.QInt8 if symmetric else QuantType.QUInt8
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric else {}
    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, activation_type=act,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, extra_options=extra)
    return out


# --- output --------------------------------------------------------------------------------------------

def _markdown(r: dict) -> str:
    m = r["machine"]
    lines = ["# INT8 for onnxruntime's CPU kernels (`--target onnxruntime-cpu`)", "",
             f"{m['date']} · {m['cpu']} · {m['cores']} cores (shared with other jobs) · load average "
             f"{m['load_average_before']} before" + (f", {m['load_average_after']} after" if m.get("load_average_after") else "")
             + f" · Python {m['python']}, onnxruntime {m['onnxruntime']}, numpy {m['numpy']}", "",
             f"Command: `{r['settings']['command']}`", ""]
    if "speed" in r:
        s = r["speed"]
        lines += [f"## Speed: {s['model']}, onnxruntime CPU (default session options)", "",
                  f"Command: `{s.get('command', r['settings']['command'])}`", "",
                  "Interleaved rounds; per round, each model runs a few times in turn (rotated order) and its throughput is "
                  "batch / median run time. Ratio = model throughput / FP32 throughput in the same round; median over rounds "
                  f"[min, max]. Target: INT8 CPU target >= {TARGET_RATIO}x FP32.", "",
                  "| batch | model | images/s median [min, max] | ratio vs FP32 median [min, max] | rounds x runs | load avg |",
                  "|---:|---|---:|---:|---:|---|"]
        for b, d in s["batches"].items():
            for k, t in d["throughput_img_s"].items():
                ratio = d["ratio_spread"].get(k)
                rtxt = f"{ratio['median']:.2f}x [{ratio['min']:.2f}, {ratio['max']:.2f}]" if ratio else "1"
                lines.append(f"| {b} | {k} | {t['median']:.2f} [{t['min']:.2f}, {t['max']:.2f}] | {rtxt} | "
                             f"{d['rounds']} x {d['runs_per_round']} | {d['load_average']} |")
        lines.append("")
        heads = {b: d.get("cpu_target_vs_quantize_static") for b, d in s["batches"].items()}
        if any(heads.values()):
            lines += ["Head to head, same rounds: throughput of `--target onnxruntime-cpu` / throughput of `quantize_static`, "
                      "median over rounds [min, max] (n rounds):", "",
                      "| batch | CPU target / quantize_static |", "|---:|---:|"]
            lines += [f"| {b} | {h['median']:.3f} [{h['min']:.3f}, {h['max']:.3f}] (n={h['n']}) |" for b, h in heads.items() if h]
            lines.append("")
    if r.get("accuracy_command"):
        lines += [f"Accuracy command: `{r['accuracy_command']}`", ""]
    for depth, d in r.get("accuracy", {}).items():
        lines += [f"## Accuracy: ResNet-{depth} ({d['weights']}), calib/ 1,000 images, dev/ 3,000 images", "",
                  "| configuration | agreement with FP32 | FP32 top-1 | top-1 | drop (points) |", "|---|---:|---:|---:|---:|"]
        for row in d["rows"]:
            lines.append(f"| {row['config']} | {row['agreement'] * 100:.2f} % | {row['fp32_accuracy']:.2f} | {row['accuracy']:.2f} | "
                         f"{row['drop_points']:+.2f} |")
        lines.append("")
    return "\n".join(lines)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default=",".join(SECTIONS), type=lambda v: [x for x in v.split(",") if x])
    p.add_argument("--batches", default="1,8", type=lambda s: [int(b) for b in s.split(",")])
    p.add_argument("--rounds", type=int, default=9, help="interleaved rounds per batch size")
    p.add_argument("--iters", type=int, default=3, help="runs of each model per round")
    p.add_argument("--depths", default="56,20", type=lambda s: [int(d) for d in s.split(",")])
    p.add_argument("--workdir", default="/tmp/rtdeploy-int8-cpu-bench", help="where models are written (not committed)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "int8_cpu_target")
    return p.parse_args()


if __name__ == "__main__":
    main()
