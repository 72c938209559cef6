"""Accuracy of ``quantize --int8 --high-precision fp16`` (FP16 float parts) against the FP32-float-part INT8.

    python benchmarks/int8_high_precision.py
    python benchmarks/int8_high_precision.py --depths 20 --method mse

The real CIFAR-10 ResNets from ../shared/data/cifar10 (or $RTDEPLOY_CIFAR10), calibrated on the
1,000 ``calib/`` images (same statistics for both), evaluated on the 3,000 ``dev/`` images with the
library call behind ``rtdeploy validate`` (onnxruntime CPU, each INT8 model against its FP32 parent),
plus the top-1 agreement between the two INT8 models themselves on the same images.

Caveat, as for ``--fp16``: onnxruntime's CPU provider has no float16 Conv/Gemm kernel and runs them
in float32 between Casts, so this measures FP16 storage between ops, FP16 biases and FP16 Q/DQ
scales, not FP16 arithmetic inside the convolutions (that needs TensorRT on a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dev_accuracy import evaluate  # beside this script
from record import cifar10_root, machine

import numpy as np

from rtdeploy.machine import load_average

HERE = Path(__file__).resolve().parent


def main() -> None:
    args = _parse()
    root = cifar10_root()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine("onnxruntime"), "settings": {"command": " ".join(sys.argv), "method": args.method}, "depths": {}}
    for depth in args.depths:
        result["depths"][str(depth)] = _depth(depth, root, work, args.method)
    result["machine"]["load_average_after"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(_markdown(result))
    print(_markdown(result))


def _depth(depth: int, root: Path, work: Path, method: str) -> dict:
    from rtdeploy import api

    weights = sorted((root / "weights").glob(f"resnet{depth}-*.th"))[0]
    fp32 = api.export(depth=depth, weights=weights, output=work / f"c{depth}.onnx").path
    rows, paths = [], {}
    for hp in ("fp32", "fp16"):
        t = time.perf_counter()
        r = api.quantize(fp32, int8=True, calib_dir=root / "calib", method=method, high_precision=hp, weights="nearest",
                         output=work / f"c{depth}.{method}.hp{hp}.int8.onnx")
        seconds = round(time.perf_counter() - t, 1)
        paths[hp] = r.path
        q = r.manifest["quantization"]
        rows.append({"config": f"INT8 {method}, --high-precision {hp}", "high_precision": hp, "seconds": seconds,
                     "kept_fp32": len(q.get("high_precision_fp16", {}).get("kept_fp32", [])),
                     "scales_raised": q.get("high_precision_fp16", {}).get("scales_raised_to_fp16_normal"),
                     **evaluate(r.path, root / "dev")})
        print(json.dumps({"depth": depth, **rows[-1]}), flush=True)
    between = _agreement_between(paths["fp32"], paths["fp16"], fp32, root / "dev")
    return {"weights": weights.name, "rows": rows, "fp16_vs_fp32_parts": between}


def _agreement_between(a: Path, b: Path, fp32: Path, dev: Path) -> dict:
    """Top-1 agreement and mean cosine of the logits of the two INT8 models on the dev images."""
    import onnxruntime as ort

    from rtdeploy.artifacts import read_manifest
    from rtdeploy.data import open_source
    from rtdeploy.models import ModelMeta

    meta = ModelMeta.from_dict(read_manifest(fp32)["model"])
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sa, sb = (ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in (a, b))
    name = sa.get_inputs()[0].name
    agree, cos, n = 0, [], 0
    for batch in open_source(dev, meta).batches(100):
        ya, yb = sa.run(None, {name: batch.images})[0], sb.run(None, {name: batch.images})[0].astype(np.float32)
        agree += int((ya.argmax(1) == yb.argmax(1)).sum())
        cos.extend((ya * yb).sum(1) / np.linalg.norm(ya, axis=1) / np.linalg.norm(yb, axis=1))
        n += len(ya)
    return {"images": n, "top1_agreement": round(agree / n, 5), "cosine_mean": round(float(np.mean(cos)), 6),
            "cosine_min": round(float(np.min(cos)), 6)}


def _markdown(r: dict) -> str:
    m = r["machine"]
    lines = ["# INT8 with FP16 float parts (`--high-precision fp16`) vs FP32 float parts", "",
             f"{m['date']} · {m['cpu']} · {m['cores']} cores (shared) · load average {m['load_average_before']} before, "
             f"{m.get('load_average_after')} after · onnxruntime {m['onnxruntime']}", "",
             f"Command: `{r['settings']['command']}`. Calibrate on `calib/` (1,000 images), evaluate on `dev/` (3,000 images) "
             "with `rtdeploy validate` (onnxruntime CPU). onnxruntime runs Conv/Gemm in float32 between Casts on a CPU, "
             "so this covers FP16 storage, biases and Q/DQ scales, not FP16 arithmetic inside convolutions.", ""]
    for depth, d in r["depths"].items():
        lines += [f"## ResNet-{depth} ({d['weights']})", "",
                  "| configuration | agreement with FP32 | FP32 top-1 | top-1 | drop (points) | kept FP32 | scales raised |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for row in d["rows"]:
            lines.append(f"| {row['config']} | {row['agreement'] * 100:.2f} % | {row['fp32_accuracy']:.2f} | {row['accuracy']:.2f} | "
                         f"{row['drop_points']:+.2f} | {row['kept_fp32']} | {row['scales_raised'] if row['scales_raised'] is not None else ''} |")
        b = d["fp16_vs_fp32_parts"]
        lines += ["", f"FP16-part vs FP32-part INT8 on the same {b['images']} images: top-1 agreement "
                  f"{b['top1_agreement'] * 100:.2f} %, logit cosine mean {b['cosine_mean']}, min {b['cosine_min']}.", ""]
    return "\n".join(lines)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", default="20,56", type=lambda s: [int(d) for d in s.split(",")])
    p.add_argument("--method", default="entropy")
    p.add_argument("--workdir", default="/tmp/rtdeploy-int8-hp-bench", help="where models are written (not committed)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "int8_high_precision")
    return p.parse_args()


if __name__ == "__main__":
    main()
