"""What a correct and a broken INT8 (and FP16/FP32) model measure against their reference: the data
behind the default validation tolerances (rtdeploy/validate/tolerances.py, docs/validation.md).

    python benchmarks/validation_tolerances.py                    # everything (about 30 min on 2 cores)
    python benchmarks/validation_tolerances.py --depths 20 --folders 2

For each trained CIFAR-10 ResNet (../shared/data/cifar10, or $RTDEPLOY_CIFAR10) and each small
calibration folder (48 images drawn with a seed from ``calib/``: flat folders, as a user's own, and
one with class subfolders; plus the whole 1,000), this does what ``rtdeploy run`` without
``--images`` does: hold a quarter of the folder out, calibrate FP16 / INT8 (TensorRT placement) /
INT8 (onnxruntime-CPU form) on the rest, and compare each with the FP32 ONNX on the held-out
images. Next to every correct INT8 model it measures a deliberately broken one: the same model
with every activation scale multiplied by 8 (each activation keeps 4 of its 8 bits: the error of
a calibration bug such as a range taken from the wrong tensor), and a broken one with every scale
(weights too) multiplied by 8. It also measures each on random normal inputs (what the verdict
rests on when the folder is too small to split) and, for one folder per model, on the 3,000
``dev/`` images, where the accuracy drop shows how broken "broken" is. A seed-0 ResNet-18 with the
bundled photos (12: too few to split) gives the synthetic-input case of the CI job.

Results: benchmarks/results/validation_tolerances.{json,md}, with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from record import machine, save

import numpy as np

HERE = Path(__file__).resolve().parent
CIFAR = Path(os.environ.get("RTDEPLOY_CIFAR10", HERE.parents[1] / "shared" / "data" / "cifar10"))
STATS = ("cosine_mean", "cosine_worst", "top1_agreement", "top5_agreement", "max_abs_err_of_range", "accuracy_drop_points")


def flat_folder(dest: Path, seed: int, count: int = 48) -> Path:
    """``count`` images drawn with ``seed`` from CIFAR's calib/, copied flat (a user's own folder has no classes)."""
    files = sorted((CIFAR / "calib").rglob("*.jpg"))
    random.Random(seed).shuffle(files)
    dest.mkdir(parents=True, exist_ok=True)
    for f in files[:count]:
        shutil.copy(f, dest / f"{f.parent.name}_{f.name}")
    return dest


def class_folder(dest: Path, per_class: int = 5, count: int = 48) -> Path:
    """The first images of each class of calib/, in class subfolders (labelled), ``count`` in all."""
    taken = 0
    for klass in sorted(p for p in (CIFAR / "calib").iterdir() if p.is_dir()):
        k = min(per_class, count - taken)
        (dest / klass.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(klass.glob("*.jpg"))[:k]:
            shutil.copy(f, dest / klass.name / f.name)
        taken += k
    return dest


def broken_copy(model: Path, factor: float, activations_only: bool) -> Path:
    """A copy of an INT8 Q/DQ model (with its manifest, re-hashed) whose scales are ``factor`` times larger:
    every activation Q/DQ pair's (``activations_only``), or every Q/DQ scale (weights and biases too)."""
    import onnx
    from onnx import numpy_helper

    from rtdeploy.artifacts import manifest_path, read_manifest, sha256_file, write_json_atomic

    m = onnx.load(str(model))
    inits = {i.name: i for i in m.graph.initializer}
    produced_by_q = {n.output[0] for n in m.graph.node if n.op_type == "QuantizeLinear"}
    scaled = set()
    for n in m.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or n.input[1] not in inits or n.input[1] in scaled:
            continue
        if activations_only and n.op_type == "DequantizeLinear" and n.input[0] not in produced_by_q:
            continue  # a weight's (or bias's) DequantizeLinear
        if activations_only and n.op_type == "QuantizeLinear" and n.input[0] in inits:
            continue
        arr = numpy_helper.to_array(inits[n.input[1]]) * np.float32(factor)
        inits[n.input[1]].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), n.input[1]))
        scaled.add(n.input[1])
    out = model.with_name(model.name.replace(".onnx", f".broken-{'act' if activations_only else 'all'}.onnx"))
    onnx.save(m, str(out))
    manifest = read_manifest(model)
    manifest.update(artifact=out.name, sha256=sha256_file(out), bytes=out.stat().st_size)
    write_json_atomic(manifest_path(out), manifest)
    return out


def measure(model: Path, images: Path | None, held_out: bool, store, samples: int | None = None) -> dict:
    """The statistics of ``model`` against its reference on one input set (the real one when given)."""
    from rtdeploy.validate import ValidateConfig, validate_model

    rep = validate_model(ValidateConfig(model=model, images=images, held_out=held_out, samples=samples, batch=32), store=store)
    s = rep.sets[-1]
    (stats,) = s.outputs.values()
    return {"inputs": s.name, "samples": s.samples, **{k: stats.get(k) for k in STATS}}


def one_case(depth: int, weights: Path | None, folder: Path, folder_label: str, work: Path, dev: bool, store) -> list[dict]:
    from rtdeploy.make_or_reuse import quantized
    from rtdeploy.export import ExportConfig, export_onnx
    from rtdeploy.precision.quantize import QuantizeConfig

    fp32 = work / f"resnet{depth}.onnx"
    if not fp32.exists():
        export_onnx(ExportConfig(depth=depth, weights=weights, output=fp32))
    rows = []
    makes = {"fp16": dict(fp16=True), "int8": dict(int8=True), "int8-cpu": dict(int8=True, target="onnxruntime-cpu")}
    for label, kw in makes.items():
        out = work / f"{folder_label}.{label}.onnx"
        t0 = time.perf_counter()
        quantized(QuantizeConfig(model=fp32, calib_dir=folder, output=out, hold_out_validation=True, stats_cache=False, **kw))
        seconds = time.perf_counter() - t0
        variants = {"correct": out}
        if label.startswith("int8"):
            variants["activation scales x8"] = broken_copy(out, 8, True)
            variants["all scales x8"] = broken_copy(out, 8, False)
        for variant, path in variants.items():
            sets = [("held-out", folder, True), ("random", None, False)] + ([("dev", CIFAR / "dev", False)] if dev else [])
            for kind, images, held in sets:
                r = measure(path, images, held, store)
                rows.append({"model": f"resnet{depth}" + ("" if weights else " (seed 0)"), "folder": folder_label, "precision": label,
                             "variant": variant, "set": kind, "quantize_s": round(seconds, 1), **r})
                print(f"resnet{depth} {folder_label} {label:8} {variant:22} {kind:8} n={r['samples']:5} "
                      f"cos={r['cosine_mean']:.4f} worst={r['cosine_worst']:.4f} top1={r['top1_agreement']}", flush=True)
    return rows


def seed0_resnet18(work: Path, store) -> list[dict]:
    """The CI job's case: seed-0 ResNet-18, the bundled photos (too few to split: random inputs)."""
    from rtdeploy.precision.calibration_data import bundled_calib_dir

    return one_case(18, None, bundled_calib_dir(), "bundled", work, False, store)


def summary(rows: list[dict]) -> list[dict]:
    """Per precision, variant and input set: the worst, median and best of each statistic over the cases."""
    out = []
    keys = sorted({(r["precision"], r["variant"], r["set"], "seed 0" in r["model"]) for r in rows})
    for prec, variant, kind, seed0 in keys:
        group = [r for r in rows if (r["precision"], r["variant"], r["set"], "seed 0" in r["model"]) == (prec, variant, kind, seed0)]
        row = {"precision": prec, "variant": variant, "set": kind + (" (seed-0 model)" if seed0 else ""), "cases": len(group)}
        for stat in ("cosine_mean", "cosine_worst", "top1_agreement", "accuracy_drop_points"):
            vals = [r[stat] for r in group if r[stat] is not None]
            if vals:
                worst = min(vals) if stat != "accuracy_drop_points" else max(vals)
                best = max(vals) if stat != "accuracy_drop_points" else min(vals)
                row[stat] = f"{worst:.4f} / {statistics.median(vals):.4f} / {best:.4f}"
        out.append(row)
    return out


# (tolerance key, statistic, input set, broken variant it must catch): where each derived limit comes from
DERIVED = [
    ("int8", "cosine_mean", "held-out", "activation scales x8"),
    ("int8-cpu", "cosine_mean", "held-out", "activation scales x8"),
    ("int8", "top1_agreement", "dev", "activation scales x8"),
    ("int8-cpu", "top1_agreement", "dev", "activation scales x8"),
    ("int8", "cosine_worst", "dev", "activation scales x8"),
    ("int8-cpu", "cosine_worst", "dev", "activation scales x8"),
    ("int8", "accuracy_drop_points", "dev", "activation scales x8"),
    ("int8-cpu", "accuracy_drop_points", "dev", "activation scales x8"),
    ("int8@random", "cosine_mean", "random", "all scales x8"),
    ("int8-cpu@random", "cosine_mean", "random", "all scales x8"),
    ("int8@random", "cosine_worst", "random", "all scales x8"),
    ("int8-cpu@random", "cosine_worst", "random", "all scales x8"),
]


def derive_limits(rows: list[dict]) -> list[dict]:
    """Each limit sits between the worst correct model and the best broken one, at the geometric mean
    of their distances from perfect (1 - cosine, 1 - agreement; the accuracy drop in points itself),
    rounded to two significant digits: the same factor of margin on both sides. Trained models only
    (a seed-0 model is no accuracy case)."""
    import math

    out = []
    for key, stat, kind, broken in DERIVED:
        upper = stat == "accuracy_drop_points"  # a limit from above, in points
        distance = (lambda v: max(v, 0.0)) if upper else (lambda v: 1 - v)
        precision = key.split("@")[0]
        trained = [r for r in rows if r["precision"] == precision and r["set"] == kind and "seed 0" not in r["model"]]
        good = [distance(r[stat]) for r in trained if r["variant"] == "correct"]
        bad = [distance(r[stat]) for r in trained if r["variant"] == broken]
        if not good or not bad or max(good) <= 0:
            continue
        worst_good, best_bad = max(good), min(bad)
        gap = math.sqrt(worst_good * best_bad)
        gap = round(gap, -int(math.floor(math.log10(gap))) + 1)
        back = (lambda d: d) if upper else (lambda d: 1 - d)
        out.append({"tolerance": key, "statistic": stat, "inputs": kind, "cases": len(good), "worst correct": back(worst_good),
                    "best broken": back(best_bad), "broken by": broken, "limit": round(back(gap), 6),
                    "margin": round(min(best_bad / gap, gap / worst_good), 2)})
    return out


def markdown(result: dict) -> str:
    from rtdeploy.tables import format_table

    m = result["machine"]
    lines = [
        "# Validation statistics of correct and broken FP16 / INT8 models", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, load average before {m['load_average_before']}, {m['date']}; "
        f"took {result['seconds']:.0f} s. Script: `benchmarks/validation_tolerances.py`.", "",
        "Each cell: worst / median / best over the cases (models x calibration folders). `held-out`: the quarter of "
        "the calibration folder `rtdeploy run` holds out (12 of 48; 250 of 1,000); `random`: 8 random normal inputs; "
        "`dev`: the 3,000 CIFAR-10 test images. Accuracy drop in points (labelled sets only).", "",
        "```", format_table(result["summary"], width=170), "```", "",
        "## Limits derived from these cases", "",
        "Each limit lies at the geometric mean of 1 - statistic of the worst correct model and of the best broken one "
        "(two significant digits); `margin`: the smaller of the two factors by which each side clears it.", "",
        "```", format_table(derive_limits(result["rows"]), width=140), "```", "",
        "## Every case", "", "```",
        format_table([{k: r[k] for k in ("model", "folder", "precision", "variant", "set", "samples", "cosine_mean", "cosine_worst",
                                        "top1_agreement", "accuracy_drop_points")} for r in result["rows"]], width=160),
        "```", "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", default="20,32,44,56")
    p.add_argument("--folders", type=int, default=4, help="flat 48-image folders (seeds 1..N) per model")
    p.add_argument("--no-full", action="store_true", help="skip the whole 1,000-image calib/ folder")
    p.add_argument("--no-seed0", action="store_true", help="skip the seed-0 ResNet-18 case")
    p.add_argument("--out", default=str(HERE / "results" / "validation_tolerances"))
    p.add_argument("--from-json", help="summarize an earlier run's JSON again instead of measuring")
    args = p.parse_args()
    if args.from_json:
        import json

        result = json.loads(Path(args.from_json).read_text())
        result["summary"], result["limits"] = summary(result["rows"]), derive_limits(result["rows"])
        save(result, Path(args.out), markdown)
        print(markdown(result))
        return
    if not (CIFAR / "weights").is_dir():
        sys.exit(f"no CIFAR-10 data at {CIFAR}; set RTDEPLOY_CIFAR10")
    from rtdeploy.validate import OutputStore

    info = machine("onnxruntime", "torch", "onnx")
    start = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rtdeploy-tol-") as tmp:
        tmp = Path(tmp)
        folders = [(f"flat48-s{s}", flat_folder(tmp / f"flat48-s{s}", s)) for s in range(1, args.folders + 1)]
        folders.append(("classes48", class_folder(tmp / "classes48")))
        if not args.no_full:
            folders.append(("calib1000", CIFAR / "calib"))
        for depth in (int(d) for d in args.depths.split(",")):
            weights = next((CIFAR / "weights").glob(f"resnet{depth}-*.th"))
            work = tmp / f"r{depth}"
            work.mkdir()
            store = OutputStore()  # the FP32 outputs on each set are computed once per model
            for i, (label, folder) in enumerate(folders):
                rows += one_case(depth, weights, folder, label, work, dev=(label == "classes48"), store=store)
        if not args.no_seed0:
            work = tmp / "r18"
            work.mkdir()
            rows += seed0_resnet18(work, OutputStore())
    result = {"machine": {**info, "load_average_after": os.getloadavg()}, "seconds": time.perf_counter() - start,
              "rows": rows, "summary": summary(rows), "limits": derive_limits(rows)}
    save(result, Path(args.out), markdown)
    print(markdown(result))


if __name__ == "__main__":
    main()
