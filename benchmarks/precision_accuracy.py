"""INT8 / FP16 accuracy, calibration time and memory on the real CIFAR ResNets; write JSON + Markdown.

    python benchmarks/precision_accuracy.py                         # ResNet-56 and -20, everything
    python benchmarks/precision_accuracy.py --depths 20 --sections accuracy --repeats 1
    python benchmarks/precision_accuracy.py --sections analysis     # rerun one part, keep the rest

Real trained CIFAR-10 ResNets from ../shared/data/cifar10 (or $RTDEPLOY_CIFAR10): every model is
calibrated on the 1,000 ``calib/`` images and evaluated on the 3,000 labelled ``dev/`` images with
the library call behind ``rtdeploy validate`` (onnxruntime CPU, candidate vs its FP32 parent, batch
8). Compared:

- our calibrators (max, percentile 99.99, entropy, mse, consumer-mse), every layer INT8, with
  round-to-nearest weights, and entropy/mse/consumer-mse with adaptive rounding (``--weights adaround``);
- onnxruntime's ``quantize_static`` (QDQ, per-channel, symmetric int8 weights and activations) on
  the same images, with its MinMax, Entropy and Percentile calibrators;
- our sensitivity fallback: entropy with ``--keep-fp N`` for a sweep of N (nearest and adaround
  weights), and ``--target-agreement`` on the held-out part of the calibration images;
- FP16 (FP32 I/O).

Calibration time and peak memory are measured in a fresh subprocess per run (wall seconds of the
calibration call; peak RSS of the whole process, imports included), with the statistics cache off;
ours are the median of ``--repeats`` runs. Memory at ImageNet size: ResNet-50 (224x224, seed-0
weights; weights do not change the cost) on 500 photos made from the bundled ``calib_data/``
(random crops, flips and resizes, written as JPEG to the work folder).

The ``heldout`` section is where the new methods' choices were made (never on ``dev/``): 800
``calib/`` images calibrate, the other 200 judge (mean KL to FP32 and top-1 agreement), for every
weights x method combination and AdaRound's FP32- vs quantized-input variant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from record import cifar10_root, machine, peak_rss_kib, run_child, save  # beside this script
from rtdeploy.machine import load_average

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
METHODS = ("max", "percentile", "entropy", "mse", "consumer-mse")
ADAROUND_METHODS = ("entropy", "mse", "consumer-mse")
ORT_METHODS = ("MinMax", "Entropy", "Percentile")
TARGETS = {"agreement": 0.985, "drop_points": 0.2, "fp16_agreement": 0.999, "r56_max_s": 11.5, "r56_entropy_s": 37.6,
           "r50_rss_gib": 4.0, "r56_new_s": 60.0, "r56_new_rss_mib": 2048.0, "keep_fp_for_agreement": 10}
SECTIONS = ("accuracy", "imagenet", "analysis", "heldout")


def main() -> None:
    args = _parse()
    if args.child:
        _child(json.loads(args.child))
        return
    root = cifar10_root()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine("onnx", "onnxruntime", "numpy"), "settings": _settings(args, root), "targets": TARGETS, "depths": {}}
    if set(args.sections) != set(SECTIONS) and args.out.with_suffix(".json").is_file():
        previous = json.loads(args.out.with_suffix(".json").read_text())
        result = {**previous, "machine": {**previous["machine"], "rerun_" + "_".join(args.sections): result["machine"]}}
    if "accuracy" in args.sections:
        for depth in args.depths:
            result["depths"][str(depth)] = _depth(depth, root, work, args)
            save(result, args.out, _markdown)
    if "imagenet" in args.sections:
        result["imagenet_memory"] = _imagenet_memory(work, args)
    if "analysis" in args.sections:
        result["analysis"] = _analysis(root, work)
    if "heldout" in args.sections:
        result["heldout"] = {str(d): _heldout(d, root, work) for d in args.depths}
        save(result, args.out, _markdown)
    result["machine"]["load_average_after"] = load_average()
    result["summary"] = _summary(result)
    save(result, args.out, _markdown)
    print(f"wrote {args.out.with_suffix('.json')} and .md")


# --- one depth ------------------------------------------------------------------------------------

def _depth(depth: int, root: Path, work: Path, args) -> dict:
    from rtdeploy import api

    weights = sorted((root / "weights").glob(f"resnet{depth}-*.th"))[0]
    fp32 = api.export(depth=depth, weights=weights, output=work / f"r{depth}.onnx").path
    calib, dev = root / "calib", root / "dev"
    rows = []
    evaluate = _Evaluator(fp32, dev) if args.fast_eval else (lambda path: _evaluate(path, dev))

    def add(label: str, path: Path, **extra) -> None:
        row = {"config": label, **extra, **evaluate(path)}
        rows.append(row)
        print(json.dumps({"depth": depth, **row}), flush=True)

    if "fp16" in args.rows:
        r = api.quantize(fp32, fp16=True, calib_dir=calib, output=work / f"r{depth}.fp16.onnx", stats_cache=False)
        add("rtdeploy fp16 (fp32 I/O)", r.path, precision="fp16", kept_fp32=len(r.report["kept_fp32"]))
    timing = {}
    combos = [(m, "nearest") for m in METHODS] + [(m, "adaround") for m in ADAROUND_METHODS]
    for method, rounding in [c for c in combos if _label(*c) in args.rows or "all" in args.rows]:
        label = _label(method, rounding)
        out = work / f"r{depth}.{method}.{rounding}.int8.onnx"
        repeats = args.repeats if (method, rounding) in {(m, "nearest") for m in METHODS[:4]} else args.new_repeats
        runs = [run_child(__file__, {"kind": "ours", "model": str(fp32), "calib": str(calib), "method": method,
                                     "weights": rounding, "output": str(out)}, timeout=1800) for _ in range(repeats)]
        timing[label] = _timing(runs)
        if timing[label].get("error"):
            rows.append({"config": label, "error": timing[label]["error"]})
            continue
        add(label, out, precision="int8", method=method, weights=rounding, keep_fp=0,
            calib_s=timing[label]["median_s"], peak_rss_mib=timing[label]["peak_rss_mib"])
    # quantize_static's models carry no rtdeploy manifest (the typed manifests refuse a hand-made one),
    # so they are evaluated directly: onnxruntime over dev/ against the FP32 model's logits.
    direct = (evaluate if args.fast_eval else _Evaluator(fp32, dev)) if args.ort and args.ort_methods else None
    for method in args.ort_methods if args.ort else ():
        out = work / f"r{depth}.ort-{method.lower()}.int8.onnx"
        run = run_child(__file__, {"kind": "ort", "model": str(fp32), "calib": str(calib), "method": method, "output": str(out)},
                        timeout=args.ort_timeout)
        timing[f"onnxruntime {method}"] = _timing([run])
        if run.get("error"):
            rows.append({"config": f"onnxruntime quantize_static {method}", "error": run["error"]})
            continue
        row = {"config": f"onnxruntime quantize_static {method}", "precision": "int8", "method": method,
               "calib_s": run["seconds"], "peak_rss_mib": run["peak_rss_mib"], "evaluated": "directly", **direct(out)}
        rows.append(row)
        print(json.dumps({"depth": depth, **row}), flush=True)
    for sweep in args.sweep:
        sweep_depth, method, rounding, counts = sweep.split(":")
        if int(sweep_depth) != depth:
            continue
        for n in (int(c) for c in counts.split(",")):
            t = time.perf_counter()
            r = api.quantize(fp32, int8=True, calib_dir=calib, method=method, keep_fp=n, weights=rounding,
                             output=work / f"r{depth}.keep{n}.{method}.{rounding}.int8.onnx")
            add(f"{_label(method, rounding)} --keep-fp {n}", r.path, precision="int8", method=method, weights=rounding,
                keep_fp=n, kept=r.report["kept_fp"], held_out_agreement=r.report.get("held_out_agreement"),
                calib_s=round(time.perf_counter() - t, 2))
    for target in args.target_agreement:
        t = time.perf_counter()
        r = api.quantize(fp32, int8=True, calib_dir=calib, method="entropy", weights="nearest", target_agreement=target,
                         output=work / f"r{depth}.target{target}.int8.onnx")
        add(f"rtdeploy entropy --target-agreement {target}", r.path, precision="int8", method="entropy",
            keep_fp=len(r.report["kept_fp"]), kept=r.report["kept_fp"], held_out_agreement=r.report.get("held_out_agreement"),
            calib_s=round(time.perf_counter() - t, 2))
    return {"weights": weights.name, "rows": rows, "timing": timing}


class _Evaluator:
    """Agreement and top-1 on ``dev`` like ``rtdeploy validate`` (onnxruntime CPU, default graph
    optimizations), with the FP32 logits computed once per model and batches of 50: what makes a
    re-run of many rows fit on a loaded 2-core machine."""

    def __init__(self, fp32: Path, dev: Path, batch: int = 50):
        import numpy as np

        from rtdeploy.artifacts import read_manifest
        from rtdeploy.data import open_source
        from rtdeploy.models import ModelMeta

        self.meta = ModelMeta.from_dict(read_manifest(fp32)["model"])
        parts = list(open_source(dev, self.meta).batches(500))
        self.images = np.concatenate([b.images for b in parts])
        self.labels = np.concatenate([b.labels for b in parts])
        self.batch = batch
        self.reference = self._logits(fp32)

    def _logits(self, path: Path):
        import numpy as np
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: self.images[i:i + self.batch]})[0] for i in range(0, len(self.images), self.batch)])

    def __call__(self, path: Path) -> dict:
        import numpy as np

        out = self._logits(path)
        ref = self.reference
        cos = np.sum(out * ref, axis=1) / np.maximum(np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1), 1e-30)
        fp32_acc = float(np.mean(ref.argmax(1) == self.labels)) * 100
        acc = float(np.mean(out.argmax(1) == self.labels)) * 100
        return {"images": len(self.images), "agreement": round(float(np.mean(out.argmax(1) == ref.argmax(1))), 5),
                "cosine_mean": round(float(cos.mean()), 6), "fp32_accuracy": round(fp32_acc, 2), "accuracy": round(acc, 2),
                "drop_points": round(fp32_acc - acc, 2)}


def _label(method: str, weights: str) -> str:
    return f"rtdeploy {method}" + ("" if weights == "nearest" else f" --weights {weights}")


def _evaluate(path: Path, dev: Path) -> dict:
    from rtdeploy import api

    report = api.validate(path, images=dev).to_dict()
    images = next(s for s in report["sets"] if s["name"] == "images")
    st = next(iter(images["outputs"].values()))
    return {"images": images["samples"], "agreement": round(st["top1_agreement"], 5), "cosine_mean": round(st["cosine_mean"], 6),
            "fp32_accuracy": round(st["reference_accuracy"] * 100, 2), "accuracy": round(st["candidate_accuracy"] * 100, 2),
            "drop_points": round(st["accuracy_drop_points"], 2)}


# --- calibration runs in a child process (time and peak RSS) -----------------------------------------



def _child(job: dict) -> None:
    import onnx  # noqa: F401  (imported before timing: only the calibration call is timed)
    import onnxruntime  # noqa: F401

    from rtdeploy import api

    t = time.perf_counter()
    if job["kind"] == "ours":
        api.quantize(job["model"], int8=True, calib_dir=job["calib"], method=job["method"], output=job["output"],
                     stats_cache=False, calib_size=job.get("calib_size"), weights=job.get("weights", "nearest"))
    else:
        _ort_quantize(job)
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": round(seconds, 3), "peak_rss_mib": round(peak_rss_kib() / 1024, 1)}))




def _ort_quantize(job: dict) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    from rtdeploy.artifacts import read_manifest
    from rtdeploy.data import open_source
    from rtdeploy.models import ModelMeta

    parent = read_manifest(job["model"])
    meta = ModelMeta.from_dict(parent["model"])
    source = open_source(job["calib"], meta)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = (b.images for b in source.batches(100))

        def get_next(self):
            images = next(self.batches, None)
            return None if images is None else {meta.input_name: images}

    quantize_static(job["model"], job["output"], Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, job["method"]),
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})


def _timing(runs: list[dict]) -> dict:
    ok = [r for r in runs if not r.get("error")]
    if not ok:
        return {"error": runs[0].get("error")}
    secs = [r["seconds"] for r in ok]
    return {"runs_s": secs, "median_s": round(statistics.median(secs), 2), "peak_rss_mib": max(r["peak_rss_mib"] for r in ok)}


# --- ImageNet-size memory ----------------------------------------------------------------------------

def _imagenet_memory(work: Path, args) -> dict:
    from rtdeploy import api

    photos = _photo_set(work / "imagenet500", 500)
    fp32 = api.export(depth=50, output=work / "r50.onnx").path
    out = {}
    for method in ("max", "entropy"):
        run = run_child(__file__, {"kind": "ours", "model": str(fp32), "calib": str(photos), "method": method,
                                   "output": str(work / f"r50.{method}.int8.onnx")}, timeout=1800)
        out[method] = run
        print(json.dumps({"resnet50_500_images": method, **run}), flush=True)
    return {"model": "resnet50 (224x224, seed-0 weights)", "images": 500, "source": "crops/flips of calib_data/ photos", "runs": out}


def _photo_set(folder: Path, count: int) -> Path:
    import numpy as np
    from PIL import Image

    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted((REPO / "rtdeploy" / "calib_data").glob("*.jpg"))
    rng = np.random.default_rng(0)
    for i in range(count):
        img = Image.open(photos[i % len(photos)]).convert("RGB")
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.6, 1)), int(h * rng.uniform(0.6, 1))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = img.crop((x, y, x + cw, y + ch)).resize((int(rng.integers(300, 500)), int(rng.integers(300, 500))))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img.save(folder / f"{i:04d}.jpg", quality=85)
    return folder


# --- where ResNet-56 loses INT8 accuracy (internal calls, not CLI configurations) --------------------

def _analysis(root: Path, work: Path) -> dict:
    """Variants that no CLI option makes, to show where the error comes from: weights alone,
    everything but the residual shortcuts, the same model under two onnxruntime optimization
    levels, and whether per-layer sensitivities add up."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from rtdeploy.artifacts import read_manifest
    from rtdeploy.data import open_source
    from rtdeploy.models import ModelMeta
    from rtdeploy.precision.int8.calibrators import compute_thresholds
    from rtdeploy.precision.int8.collect import batch_size_for, collect_stats
    from rtdeploy.precision.int8.qdq import insert_qdq, plan_qdq, scale_from_amax
    from rtdeploy.precision.int8.sensitivity import SwitchableEvaluator, mean_kl

    from rtdeploy import api

    path = work / "r56.onnx"
    if not path.is_file():
        api.export(depth=56, weights=sorted((root / "weights").glob("resnet56-*.th"))[0], output=path)
    meta = ModelMeta.from_dict(read_manifest(path)["model"])
    model = onnx.load(str(path))
    plan = plan_qdq(model)
    calib = np.concatenate([b.images for b in open_source(root / "calib", meta).batches(250)])
    dev = np.concatenate([b.images for b in open_source(root / "dev", meta).batches(500)])
    bs = batch_size_for(model, plan.observed())
    stats = collect_stats(model, plan.observed(), (calib[i:i + bs] for i in range(0, len(calib), bs)), histogram=True)
    scales = {t: scale_from_amax(a) for t, a in compute_thresholds(stats, "entropy").items()}

    def run(m, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = level
        sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return np.concatenate([sess.run(None, {meta.input_name: dev[i:i + 8]})[0] for i in range(0, len(dev), 8)])

    ref = run(model)

    def row(label, out, against=ref):
        return {"variant": label, "agreement": round(float(np.mean(out.argmax(1) == against.argmax(1))), 5),
                "kl": round(mean_kl(against, out), 5)}

    full = insert_qdq(model, plan, scales)
    adds = {u.node for u in plan.units if u.op_type == "Add"}
    rows = [row("all layers int8 (entropy)", run(full)),
            row("weights only int8 (activations float)", run(_strip_activation_qdq(full))),
            row("all int8 but the 27 residual shortcuts", run(insert_qdq(model, plan, scales, keep=adds)))]
    exact = run(full, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    rows.append(row("all int8, onnxruntime optimizations off", exact))
    rows.append(row("same int8 model: optimizations off vs on", exact, against=run(full)))
    rng = np.random.default_rng(0)
    held = calib[np.sort(rng.choice(len(calib), 200, replace=False))]
    ev = SwitchableEvaluator(model, plan, scales, held, batch_size=200)
    ranking = ev.rank()
    additivity = {"held_out_images": 200, "sum_of_single_layer_kl": round(sum(s.kl for s in ranking), 5),
                  "kl_all_layers": round(ev.score(set())[1], 5),
                  "kl_of_the_27_shortcuts_alone": round(sum(s.kl for s in ranking if s.node in adds), 5)}
    print(json.dumps({"analysis": rows, "additivity": additivity}), flush=True)
    return {"model": "resnet56", "calibration": "entropy on all 1,000 calib/ images", "evaluation": "3,000 dev/ images, batch 8",
            "rows": rows, "additivity": additivity}


def _strip_activation_qdq(model):
    """A copy of a Q/DQ model whose activation Q/DQ pairs are bypassed (weights stay int8)."""
    import copy

    from rtdeploy.precision.graph import producers

    m = copy.deepcopy(model)
    prod = producers(m.graph)
    alias = {n.output[0]: prod[n.input[0]].input[0] for n in m.graph.node
             if n.op_type == "DequantizeLinear" and n.input[0] in prod and prod[n.input[0]].op_type == "QuantizeLinear"}
    for node in m.graph.node:
        for i, t in enumerate(node.input):
            if t in alias:
                node.input[i] = alias[t]
    return m


# --- summary and output ------------------------------------------------------------------------------

def _summary(result: dict) -> dict:
    s = {}
    for depth, d in result["depths"].items():
        rows = [r for r in d["rows"] if "agreement" in r]
        ours = [r for r in rows if r.get("precision") == "int8" and r["config"].startswith("rtdeploy")]
        int8_ok = [r for r in ours if r["agreement"] >= TARGETS["agreement"] and r["drop_points"] <= TARGETS["drop_points"]]
        all_int8 = [r for r in ours if not r.get("keep_fp")]
        before = [r for r in all_int8 if r["config"] in {f"rtdeploy {m}" for m in METHODS[:4]}]
        best = max(all_int8, key=lambda r: r["agreement"], default=None)
        best_before = max(before, key=lambda r: r["agreement"], default=None)
        fp16 = next((r for r in rows if r.get("precision") == "fp16"), None)
        pick = lambda r: r and {k: r[k] for k in ("config", "agreement", "drop_points")}  # noqa: E731
        s[f"resnet{depth}"] = {
            "best_all_int8": pick(best),
            "best_all_int8_before_this_change": pick(best_before),
            "all_int8_meets_targets": bool(best and best["agreement"] >= TARGETS["agreement"] and best["drop_points"] <= TARGETS["drop_points"]),
            "smallest_fallback_meeting_targets": {
                w: min((r for r in int8_ok if r.get("weights", "nearest") == w), key=lambda r: r.get("keep_fp", 0), default={}).get("config")
                for w in ("nearest", "adaround")},
            "fp16_agreement": fp16 and fp16["agreement"],
            "fp16_meets_target": bool(fp16 and fp16["agreement"] >= TARGETS["fp16_agreement"]),
        }
        t = d["timing"]
        if depth == "56":
            s["resnet56_calibration_s"] = {k: v.get("median_s") for k, v in t.items() if k.startswith("rtdeploy")}
            s["resnet56_peak_rss_mib"] = {k: v.get("peak_rss_mib") for k, v in t.items() if k.startswith("rtdeploy")}
            new = {k: v for k, v in t.items() if "adaround" in k or "consumer-mse" in k}
            s["resnet56_new_methods_meet_time_and_memory"] = {
                k: bool((v.get("median_s") or 1e9) <= TARGETS["r56_new_s"] and (v.get("peak_rss_mib") or 1e9) <= TARGETS["r56_new_rss_mib"])
                for k, v in new.items()}
    if "imagenet_memory" in result:
        rss = [r.get("peak_rss_mib", 1e9) for r in result["imagenet_memory"]["runs"].values()]
        s["resnet50_500_images_peak_rss_gib"] = round(max(rss) / 1024, 2)
        s["resnet50_meets_memory"] = max(rss) / 1024 <= TARGETS["r50_rss_gib"]
    return s


# --- held-out choices (internal calls): 800 calib/ images calibrate, 200 judge --------------------------

def _heldout(depth: int, root: Path, work: Path) -> dict:
    """Every weights x method combination judged on 200 held-out calib/ images (mean KL to FP32 and
    top-1 agreement): where the new methods' settings and the recommendation were chosen."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from rtdeploy.artifacts import read_manifest
    from rtdeploy.data import open_source
    from rtdeploy.models import ModelMeta
    from rtdeploy.precision.int8 import adaround as ar
    from rtdeploy.precision.int8.calibrators import compute_thresholds
    from rtdeploy.precision.int8.collect import batch_size_for, collect_stats
    from rtdeploy.precision.int8.consumer_mse import consumer_mse_thresholds
    from rtdeploy.precision.int8.qdq import insert_qdq, plan_qdq, scale_from_amax
    from rtdeploy.precision.int8.sensitivity import mean_kl

    path = work / f"r{depth}.onnx"
    meta = ModelMeta.from_dict(read_manifest(path)["model"])
    model = onnx.load(str(path))
    plan = plan_qdq(model)
    calib = np.concatenate([b.images for b in open_source(root / "calib", meta).batches(250)])
    held = np.zeros(len(calib), bool)
    held[np.random.default_rng(1).choice(len(calib), 200, replace=False)] = True
    fit, judge = calib[~held], calib[held]

    def batches(size=64):
        return (fit[i:i + size] for i in range(0, len(fit), size))

    def run(m):
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.concatenate([sess.run(None, {meta.input_name: judge[i:i + 100]})[0] for i in range(0, len(judge), 100)])

    ref = run(model)
    bs = batch_size_for(model, plan.observed())
    stats = collect_stats(model, plan.observed(), batches(bs), histogram=True)
    rows = []
    for method in ("entropy", "mse", "consumer-mse"):
        t = time.perf_counter()
        if method == "consumer-mse":
            th = consumer_mse_thresholds(model, plan, {k: v.amax for k, v in stats.items()}, batches())
        else:
            th = compute_thresholds(stats, method)
        scales = {k: scale_from_amax(a) for k, a in th.items()}
        t_scales = time.perf_counter() - t
        variants = [("nearest", None)] + [("adaround", ar.AdaRoundConfig())]
        if method == "entropy":
            variants.append(("adaround, quantized inputs", ar.AdaRoundConfig(quantized_inputs=True)))
        for label, cfg in variants:
            t = time.perf_counter()
            weights = None if cfg is None else ar.adaround_weights(model, plan, scales, batches(), cfg).weights
            out = run(insert_qdq(model, plan, scales, weights=weights))
            row = {"method": method, "weights": label, "kl": round(mean_kl(ref, out), 5),
                   "agreement": round(float(np.mean(out.argmax(1) == ref.argmax(1))), 4),
                   "seconds": round(t_scales + time.perf_counter() - t, 1)}
            rows.append(row)
            print(json.dumps({"heldout": depth, **row}), flush=True)
    return {"fit_images": int((~held).sum()), "judge_images": int(held.sum()), "rows": rows}


def _markdown(r: dict) -> str:
    m = r["machine"]
    lines = ["# INT8 / FP16 accuracy, calibration time and memory", "",
             f"{m['date']} · {m['cpu']} · {m['cores']} cores (shared, noisy) · load average {m['load_average_before']} before"
             + (f", {m.get('load_average_after')} after" if m.get("load_average_after") else "")
             + f" · Python {m['python']}, onnxruntime {m['onnxruntime']}, onnx {m['onnx']}, numpy {m['numpy']}", "",
             f"Calibrate on `calib/` (1,000 CIFAR-10 training images), evaluate on `dev/` ({r['settings']['dev_images']:,} "
             "labelled test images), candidate vs its FP32 parent on onnxruntime CPU (see Evaluation below). "
             "Agreement = top-1 agreement with FP32; drop = FP32 top-1 minus candidate top-1, in points. "
             "Calibration seconds and peak RSS come from a fresh process per run, statistics cache off; ours are the "
             f"median of {r['settings']['repeats']} runs. `--keep-fp`/`--target-agreement` rows rank layers on a held-out "
             "20 % of the calibration images (their seconds include that ranking).", ""]
    if m.get("note"):
        lines += [f"Note: {m['note']}", ""]
    lines += [f"Evaluation: {r['settings'].get('evaluation', 'rtdeploy validate, batch 8')}. "
              f"Command: `{r['settings'].get('command', '')}`.", ""]
    for depth, d in r["depths"].items():
        lines += [f"## ResNet-{depth} ({d['weights']})", "",
                  "| configuration | agreement | FP32 top-1 | top-1 | drop | cosine | layers kept in FP | calib s | peak RSS MiB |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in d["rows"]:
            if "error" in row:
                lines.append(f"| {row['config']} | failed: {row['error']} | | | | | | | |")
                continue
            kept = row.get("kept_fp32") if row.get("precision") == "fp16" else (row.get("keep_fp") if "keep_fp" in row else "")
            lines.append(f"| {row['config']} | {row['agreement'] * 100:.2f} % | {row['fp32_accuracy']:.2f} | {row['accuracy']:.2f} | "
                         f"{row['drop_points']:+.2f} | {row['cosine_mean']:.4f} | {kept if kept is not None else ''} | "
                         f"{row.get('calib_s', '')} | {row.get('peak_rss_mib', '')} |")
        lines.append("")
    if "imagenet_memory" in r:
        im = r["imagenet_memory"]
        lines += [f"## Memory at ImageNet size: {im['model']}, {im['images']} images ({im['source']})", "",
                  "| method | calib s | peak RSS MiB |", "|---|---:|---:|"]
        for method, run in im["runs"].items():
            lines.append(f"| {method} | {run.get('seconds', run.get('error'))} | {run.get('peak_rss_mib', '')} |")
        lines.append("")
    if "analysis" in r:
        a = r["analysis"]
        lines += [f"## Where ResNet-56 loses INT8 accuracy ({a['calibration']}; {a['evaluation']})", "",
                  "| variant (internal calls, not CLI options) | agreement | mean KL |", "|---|---:|---:|"]
        lines += [f"| {x['variant']} | {x['agreement'] * 100:.2f} % | {x['kl']:.5f} |" for x in a["rows"]]
        ad = a["additivity"]
        lines += ["", f"Per-layer sensitivities add up: on {ad['held_out_images']} held-out calibration images the KL of the "
                  f"all-INT8 model is {ad['kl_all_layers']}, the sum of the 83 single-layer KLs {ad['sum_of_single_layer_kl']}, "
                  f"of which the 27 residual shortcuts {ad['kl_of_the_27_shortcuts_alone']}.", ""]
    if "heldout" in r:
        lines += ["## Choices on held-out calibration images (not dev/)", "",
                  "800 `calib/` images calibrate (statistics, thresholds, rounding), the other 200 (seeded) judge: mean KL "
                  "of the softmax to FP32 (the decision metric; 200 training images are too easy for agreement to separate "
                  "the variants) and top-1 agreement. Internal calls; seconds on this loaded machine.", ""]
        for depth, h in r["heldout"].items():
            lines += [f"ResNet-{depth}" + (f" ({h['source']})" if h.get("source") else "") + ":", "",
                      "| method | weights | mean KL | agreement | s |", "|---|---|---:|---:|---:|"]
            lines += [f"| {x['method']} | {x['weights']} | {x['kl']:.5f} | {x['agreement'] * 100:.1f} % | {x['seconds']} |" for x in h["rows"]]
            lines.append("")
    if "summary" in r:
        lines += ["## Summary", "", "```json", json.dumps(r["summary"], indent=2), "```", ""]
    return "\n".join(lines)


def _settings(args, root: Path) -> dict:
    return {"depths": args.depths, "repeats": args.repeats, "calib_images": len(list((root / "calib").rglob("*.jpg"))),
            "dev_images": len(list((root / "dev").rglob("*.jpg"))), "validate_batch": 8,
            "ort_methods": list(args.ort_methods) if args.ort else [], "command": " ".join(sys.argv),
            "evaluation": "FP32 logits once, batch 50" if args.fast_eval else "rtdeploy validate, batch 8"}


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", default="56,20", type=lambda s: [int(d) for d in s.split(",")])
    p.add_argument("--repeats", type=int, default=3, help="timed calibration runs per method (median reported)")
    p.add_argument("--new-repeats", type=int, default=1, help="timed runs of consumer-mse and the adaround rows")
    p.add_argument("--rows", default="all", type=lambda v: [x.strip() for x in v.split(",") if x.strip()],
                   help="which rows to run: 'all', 'fp16', or labels like 'rtdeploy mse --weights adaround'")
    p.add_argument("--ort-methods", default=",".join(ORT_METHODS), type=lambda v: [x for x in v.split(",") if x])
    p.add_argument("--sweep", nargs="*", default=["56:entropy:nearest:8,12,20", "56:entropy:adaround:4,6,8,10", "20:entropy:adaround:2,4"],
                   help="--keep-fp sweeps as DEPTH:METHOD:WEIGHTS:N,N,...")
    p.add_argument("--fast-eval", action="store_true", help="evaluate with FP32 logits computed once and batches of 50 "
                   "(instead of one `rtdeploy validate` per row, batch 8)")
    p.add_argument("--target-agreement", type=float, nargs="*", default=[])
    p.add_argument("--no-ort", dest="ort", action="store_false", help="skip onnxruntime quantize_static")
    p.add_argument("--ort-timeout", type=float, default=900, help="seconds before an onnxruntime calibration is abandoned")
    p.add_argument("--sections", default=",".join(SECTIONS), type=lambda v: [x for x in v.split(",") if x],
                   help=f"which parts to run ({','.join(SECTIONS)}); others are kept from the existing results")
    p.add_argument("--workdir", default="/tmp/rtdeploy-precision-bench", help="where models and photos are written (not committed)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "precision_accuracy")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    main()
