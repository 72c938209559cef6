"""Weight rounding and calibrator for all-INT8 CIFAR ResNets: choose on held-out calib/, report on dev/.

    python benchmarks/int8_reconstruct.py --sections heldout --depths 56        # the choice
    python benchmarks/int8_reconstruct.py --sections dev --depths 56,32,20      # the reported table

``heldout`` (where the default is chosen; never dev/): the 1,000 ``calib/`` images are split into 800
that calibrate and 200 that judge, for two seeded splits ("folds"). Every candidate (calibrator x
weight rounding) is calibrated on the 800 with internal calls and run on the 200 in torch with exactly
the Q/DQ model's arithmetic (:mod:`rtdeploy.precision.int8.torch_graph`). The decision metric is the
relative squared error of the logits (``sum (q - f)^2 / sum f^2``), averaged over the input and three
copies of it with N(0, 1e-3) noise added: on 200 easy training images the mean KL and the agreement
move by tens of percent under such invisible perturbations (the INT8 model's rounding decisions
flip), the logit error by a few percent. CPU seconds of each calibration are recorded too (one
thread, so that they do not depend on the other jobs sharing the machine).

``dev`` (the reported table): every candidate calibrates on all 1,000 ``calib/`` images through
``api.quantize`` in a fresh process (statistics cache off, default threads), timed (wall and CPU
seconds, peak RSS) with the load average before and after; the model is then evaluated on the 3,000
``dev/`` images with the call behind ``rtdeploy validate`` (onnxruntime CPU, all graph optimizations),
and also with onnxruntime's optimizations off (the Q/DQ arithmetic exactly, as TensorRT computes it:
with optimizations on, onnxruntime quantizes the float biases of some convolutions to int32 and
perturbs the outputs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from dev_accuracy import evaluate  # beside this script
from record import cifar10_root, machine, peak_rss_kib, run_child, save

from rtdeploy.machine import load_average

HERE = Path(__file__).resolve().parent
SECTIONS = ("heldout", "dev")
FOLDS = (1, 2)
PERTURBATIONS = 3
NOISE = 1e-3
BUDGET_S = 60.0
# (label, method, weights, reconstruction overrides): the default's candidates and the slower extras.
CANDIDATES = (
    ("entropy", "entropy", "nearest", None),
    ("mse", "mse", "nearest", None),
    ("entropy + adaround", "entropy", "adaround", None),
    ("mse + adaround", "mse", "adaround", None),
    ("entropy + block", "entropy", "block", None),
    ("mse + block", "mse", "block", None),
    ("mse + block, 256 images, 200 steps, learned scales", "mse", "block", {"images": 256, "iters": 200, "learn_scales": True}),
)
RELAXED = ("entropy + adaround (continuous relaxation)", "entropy", "adaround-relaxed", None)


def main() -> None:
    args = _parse()
    if args.child:
        _child(json.loads(args.child))
        return
    root = cifar10_root()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = args.out
    result = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    result.setdefault("runs", []).append({**machine("onnxruntime", "torch", "numpy"), "command": " ".join(sys.argv)})
    labels = [c for c in CANDIDATES if args.rows == ["all"] or c[0] in args.rows]
    for depth in args.depths:
        fp32 = _export(depth, root, work)
        if "heldout" in args.sections:
            rows = [c for c in labels] + ([RELAXED] if args.relaxed else [])
            result.setdefault("heldout", {})[str(depth)] = _heldout(fp32, root, rows)
            save(result, out, _markdown)
        if "dev" in args.sections:
            result.setdefault("dev", {})[str(depth)] = _dev(fp32, root, work, labels, result.get("dev", {}).get(str(depth), {}))
            save(result, out, _markdown)
    result["runs"][-1]["load_average_after"] = load_average()
    save(result, out, _markdown)


def _export(depth: int, root: Path, work: Path) -> Path:
    from rtdeploy import api

    weights = sorted((root / "weights").glob(f"resnet{depth}-*.th"))[0]
    path = work / f"r{depth}.onnx"
    if not path.exists():
        api.export(depth=depth, weights=weights, output=path)
    return path


# --- held-out calib/: the choice ------------------------------------------------------------------

def _heldout(fp32: Path, root: Path, candidates) -> dict:
    import numpy as np
    import onnx
    import torch

    from rtdeploy.artifacts import read_manifest
    from rtdeploy.data import open_source
    from rtdeploy.models import ModelMeta
    from rtdeploy.precision.int8.collect import batch_size_for, collect_stats
    from rtdeploy.precision.int8.layers import weighted_layers
    from rtdeploy.precision.int8.qdq import plan_qdq
    from rtdeploy.precision.int8.torch_graph import TorchGraph

    torch.set_num_threads(1)
    meta = ModelMeta.from_dict(read_manifest(fp32)["model"])
    model = onnx.load(str(fp32))
    plan = plan_qdq(model)
    graph = TorchGraph(model)
    layers = weighted_layers(model, plan.units)
    calib = np.concatenate([b.images for b in open_source(root / "calib", meta).batches(250)])
    rows = []
    for fold in FOLDS:
        held = np.zeros(len(calib), bool)
        held[np.random.default_rng(fold).choice(len(calib), 200, replace=False)] = True
        fit, judge = calib[~held], calib[held]
        stats = collect_stats(model, plan.observed(), (fit[i:i + 100] for i in range(0, len(fit), 100)), histogram=True)
        judge_sets = _perturbed(judge)
        with torch.no_grad():
            refs = [graph.forward(torch.from_numpy(x)).numpy() for x in judge_sets]
        for label, method, weights, over in candidates:
            c0 = time.process_time()
            scales, rounded = _calibrate(model, plan, stats, method, weights, over, fit)
            cpu = time.process_time() - c0
            row = {"fold": fold, "candidate": label, "cpu_s": round(cpu, 1), **_judge(graph, plan, layers, scales, rounded, judge_sets, refs)}
            rows.append(row)
            print(json.dumps({"heldout": fp32.name, **row}), flush=True)
    return {"fit_images": 800, "judge_images": 200, "folds": list(FOLDS), "perturbations": PERTURBATIONS, "noise": NOISE,
            "rows": rows, "summary": _heldout_summary(rows)}


def _perturbed(judge):
    import numpy as np

    rng = np.random.default_rng(7)
    return [judge] + [(judge + rng.normal(0, NOISE, judge.shape)).astype(np.float32) for _ in range(PERTURBATIONS)]


def _calibrate(model, plan, stats, method: str, weights: str, over: dict | None, fit):
    """(scales by tensor, int8 weights by initializer) as the INT8 stage makes them, on ``fit``."""
    from rtdeploy.precision.int8 import adaround as ar
    from rtdeploy.precision.int8.calibrators import compute_thresholds
    from rtdeploy.precision.int8.layers import weighted_layers
    from rtdeploy.precision.int8.qdq import quantize_weight, scale_from_amax
    from rtdeploy.precision.int8.reconstruct import ReconstructConfig, reconstruct

    scales = {t: scale_from_amax(a) for t, a in compute_thresholds(stats, method).items()}
    rounded = {l.unit.weight: quantize_weight(l.weight, l.unit.axis) for l in weighted_layers(model, plan.units).values()}

    def batches():
        return (fit[i:i + 64] for i in range(0, len(fit), 64))

    if weights == "adaround":
        rounded.update(ar.adaround_weights(model, plan, scales, batches(), ar.AdaRoundConfig()).weights)
    elif weights == "adaround-relaxed":
        rounded.update(_relaxed(model, plan, scales, batches()))
    elif weights == "block":
        r = reconstruct(model, plan, scales, batches(), replace(ReconstructConfig(), **(over or {})))
        rounded.update(r.weights)
        scales = {**scales, **r.scales}
    return scales, rounded


def _relaxed(model, plan, scales, batches) -> dict:
    """AdaRound's objective solved with its continuous relaxation (1,000 Adam steps per layer group),
    then single flips from there until none helps (as the greedy solver stops)."""
    from rtdeploy.precision.int8 import adaround as ar

    greedy = ar.solve_group

    def relaxed(w, h, p, max_sweeps=1.0, start=None):
        q, _, _ = ar.solve_group_relaxed(w, h, p, iters=1000, lr=0.01)
        return greedy(w, h, p, max_sweeps, start=q)

    ar.solve_group = relaxed
    try:
        return ar.adaround_weights(model, plan, scales, batches, ar.AdaRoundConfig()).weights
    finally:
        ar.solve_group = greedy


def _judge(graph, plan, layers, scales, rounded, judge_sets, refs) -> dict:
    import numpy as np
    import torch

    from rtdeploy.precision.int8.sensitivity import mean_kl
    from rtdeploy.precision.int8.torch_graph import dequantized_weights, unit_scales

    act = unit_scales(plan, scales)
    weights = dequantized_weights(layers, rounded)
    errors, kls, agree = [], [], None
    for x, ref in zip(judge_sets, refs):
        with torch.no_grad():
            out = graph.forward(torch.from_numpy(x), act, weights).numpy()
        errors.append(float(((out - ref) ** 2).sum() / (ref ** 2).sum()))
        kls.append(mean_kl(ref, out))
        if agree is None:
            agree = float(np.mean(out.argmax(1) == ref.argmax(1)))
    return {"logit_error": round(float(np.mean(errors)), 6), "logit_error_spread": [round(min(errors), 6), round(max(errors), 6)],
            "kl": round(float(np.mean(kls)), 5), "kl_spread": [round(min(kls), 5), round(max(kls), 5)], "agreement": round(agree, 4)}


def _heldout_summary(rows: list[dict]) -> list[dict]:
    import statistics

    out = []
    for label in dict.fromkeys(r["candidate"] for r in rows):
        mine = [r for r in rows if r["candidate"] == label]
        out.append({"candidate": label, "logit_error": round(statistics.mean(r["logit_error"] for r in mine), 6),
                    "per_fold": [r["logit_error"] for r in mine], "kl": round(statistics.mean(r["kl"] for r in mine), 5),
                    "agreement": round(statistics.mean(r["agreement"] for r in mine), 4),
                    "cpu_s": round(statistics.mean(r["cpu_s"] for r in mine), 1)})
    return out


# --- dev/: the reported table -----------------------------------------------------------------------

def _dev(fp32: Path, root: Path, work: Path, candidates, previous: dict) -> dict:
    rows = {r["candidate"]: r for r in previous.get("rows", [])}
    evaluator = _DevEvaluator(fp32, root / "dev")
    for label, method, weights, over in candidates:
        out = work / f"{fp32.stem}.{label.replace(' ', '').replace(',', '_').replace('+', '.')}.int8.onnx"
        before = load_average()
        run = run_child(__file__, {"model": str(fp32), "calib": str(root / "calib"), "method": method, "weights": weights,
                                   "over": over, "output": str(out)}, timeout=3600)
        run["load_average_before"], run["load_average_after"] = before, load_average()
        if run.get("error"):
            rows[label] = {"candidate": label, **run}
            continue
        rows[label] = {"candidate": label, "method": method, "weights": weights, "settings": over, **run, **evaluator(out)}
        print(json.dumps({"dev": fp32.name, **rows[label]}), flush=True)
    return {"fp32_accuracy": evaluator.fp32_accuracy, "images": evaluator.count, "rows": list(rows.values())}




def _child(job: dict) -> None:
    import onnx  # noqa: F401  (imported before timing: only the calibration call is timed)
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401

    from rtdeploy import api
    from rtdeploy.precision.int8 import weight_rounding
    from rtdeploy.precision.int8.reconstruct import ReconstructConfig

    if job.get("over"):
        weight_rounding.RECONSTRUCT = replace(ReconstructConfig(), **job["over"])
    t, c = time.perf_counter(), time.process_time()
    r = api.quantize(job["model"], int8=True, calib_dir=job["calib"], method=job["method"], output=job["output"],
                     stats_cache=False, weights=job["weights"])
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(json.dumps({"calib_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mib": round(peak_rss_kib() / 1024, 1),
                      "phases_s": r.report["seconds"]}))




class _DevEvaluator:
    """Agreement and top-1 on dev/: ``rtdeploy validate``'s call (onnxruntime, all optimizations) and
    the exact Q/DQ arithmetic (onnxruntime, optimizations off; FP32 logits computed once for it)."""

    def __init__(self, fp32: Path, dev: Path):
        import numpy as np

        from rtdeploy.artifacts import read_manifest
        from rtdeploy.data import open_source
        from rtdeploy.models import ModelMeta

        self.dev = dev
        meta = ModelMeta.from_dict(read_manifest(fp32)["model"])
        parts = list(open_source(dev, meta).batches(500))
        self.images = np.concatenate([b.images for b in parts])
        self.labels = np.concatenate([b.labels for b in parts])
        self.count = len(self.images)
        self.reference = self._logits(fp32, exact=True)
        self.fp32_accuracy = round(float(np.mean(self.reference.argmax(1) == self.labels)) * 100, 2)

    def _logits(self, path: Path, exact: bool):
        import numpy as np
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if exact:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: self.images[i:i + 50]})[0] for i in range(0, self.count, 50)])

    def __call__(self, path: Path) -> dict:
        import numpy as np

        row = evaluate(path, self.dev)
        exact = self._logits(path, exact=True)
        row.update({"agreement_exact": round(float(np.mean(exact.argmax(1) == self.reference.argmax(1))), 5),
                    "drop_points_exact": round(self.fp32_accuracy - float(np.mean(exact.argmax(1) == self.labels)) * 100, 2)})
        return row


def _markdown(r: dict) -> str:
    lines = ["# All-INT8 CIFAR ResNets: calibrator and weight rounding (`benchmarks/int8_reconstruct.py`)", ""]
    for run in r.get("runs", []):
        lines.append(f"- {run['date']} · {run['cpu']} · {run['cores']} cores (shared) · load average {run['load_average_before']} before, "
                     f"{run.get('load_average_after', '?')} after · onnxruntime {run['onnxruntime']}, torch {run['torch']} · `{run['command']}`")
    if r.get("heldout"):
        lines += ["", "## Held-out calib/ (the choice; never dev/)", "",
                  "800 calibrate, 200 judge, two seeded splits; judged in torch with the Q/DQ arithmetic exactly. Logit error = "
                  "sum (q - f)^2 / sum f^2 over the 200 images, mean of the images and 3 copies with N(0, 1e-3) noise (the decision "
                  "metric); KL and agreement for reference (KL: mean over the same 4 inputs). CPU s: the calibration with internal "
                  "calls on 800 images, one thread.", ""]
        for depth, h in r["heldout"].items():
            lines += [f"ResNet-{depth}:", "", "| candidate | logit error (mean of folds) | per fold | mean KL | agreement | CPU s |",
                      "|---|---:|---|---:|---:|---:|"]
            for x in h["summary"]:
                lines.append(f"| {x['candidate']} | {x['logit_error']:.6f} | {', '.join(f'{v:.6f}' for v in x['per_fold'])} | "
                             f"{x['kl']:.5f} | {x['agreement'] * 100:.1f} % | {x['cpu_s']} |")
            lines.append("")
    if r.get("dev"):
        lines += ["## dev/ (the reported table)", "",
                  "Calibrated on the 1,000 calib/ images in a fresh process (statistics cache off, default threads); wall and CPU "
                  "seconds of the `api.quantize` call, peak RSS of the process; load average (1 min) before/after each calibration. "
                  "Agreement/drop: `rtdeploy validate`'s call (onnxruntime, all optimizations); exact: onnxruntime with "
                  "optimizations off (the Q/DQ arithmetic as TensorRT runs it).", ""]
        for depth, d in r["dev"].items():
            lines += [f"ResNet-{depth} (FP32 top-1 {d['fp32_accuracy']} % on {d['images']} dev images):", "",
                      "| candidate | agreement | drop (points) | agreement, exact | drop, exact | calib wall s | CPU s | peak RSS MiB | load before / after |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
            for row in d["rows"]:
                if row.get("error"):
                    lines.append(f"| {row['candidate']} | error: {row['error']} | | | | | | | |")
                    continue
                lines.append(f"| {row['candidate']} | {row['agreement'] * 100:.2f} % | {row['drop_points']:+.2f} | "
                             f"{row['agreement_exact'] * 100:.2f} % | {row['drop_points_exact']:+.2f} | {row['calib_s']:.1f} | "
                             f"{row['cpu_s']:.1f} | {row['peak_rss_mib']:.0f} | {row['load_average_before'][0]} / {row['load_average_after'][0]} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", default="56", type=lambda s: [int(d) for d in s.split(",")])
    p.add_argument("--sections", default=",".join(SECTIONS), type=lambda v: [x for x in v.split(",") if x])
    p.add_argument("--rows", default="all", type=lambda v: [x.strip() for x in v.split(";") if x.strip()],
                   help="candidates to run: 'all' or labels separated by ';'")
    p.add_argument("--relaxed", action="store_true", help="held-out only: add AdaRound's continuous relaxation (minutes)")
    p.add_argument("--workdir", default="/tmp/rtdeploy-int8-reconstruct", help="models are written here (not committed)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "int8_reconstruct")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    main()
