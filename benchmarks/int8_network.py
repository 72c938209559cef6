"""Network-level reconstruction of an all-INT8 CIFAR ResNet (an experiment for issue 23).

    python benchmarks/int8_network.py heldout --depth 56 --configs ste,ste-scales   # choose on calib/
    python benchmarks/int8_network.py dev --depth 56 --config ste                    # one dev/ measurement

Starting from the default calibration (mse scales, block reconstruction of the rounding), every
weight's rounding (and optionally every activation's step size) is tuned together against the FP32
*logits* of the whole network on the calibration images: loss = KL(softmax(FP32) || softmax(INT8))
(+ ``mse`` times the squared logit error). The INT8 model in the forward pass is always the hard one
(each weight its floor or its ceiling, as the block result); the gradient reaches the rounding
parameters through AdaRound's rectified sigmoid (straight-through), and reaches the step sizes as in
LSQ. The hard rounding is kept only if it lowers the loss on all the images it was tuned on.

``heldout``: 800 calib/ images tune, 200 judge (seeded split, fold 1), judged as in
``int8_reconstruct.py`` (logit error, KL, agreement on the 200 and 3 noisy copies). ``dev``: the
chosen config on all 1,000 calib/ images, then agreement and top-1 on the 3,000 dev/ images with
onnxruntime (all optimizations, as ``rtdeploy validate``; and optimizations off: the Q/DQ arithmetic
exactly), beside the starting point (mse + block) measured the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from record import cifar10_root, machine, peak_rss_kib

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class NetConfig:
    steps: int = 300
    batch: int = 32
    lr: float = 1e-2
    start_v: float = 0.5  # |V| at the start: the block's rounding, this far from flipping
    mse: float = 0.0  # weight of the squared logit error beside the KL
    learn_scales: bool = False
    scale_lr: float = 1e-3
    tune_weights: bool = True
    augment: bool = False  # CIFAR's training augmentation (flip, 4-pixel shifted crop) on the tuning images
    seed: int = 0


CONFIGS = {
    "ste": NetConfig(),
    "ste-scales": NetConfig(learn_scales=True),
    "ste-long": NetConfig(steps=800),
    "ste-scales-long": NetConfig(steps=800, learn_scales=True),
    "ste-lr3": NetConfig(lr=3e-3),
    "ste-mse": NetConfig(mse=0.1),
    "scales": NetConfig(tune_weights=False, learn_scales=True, scale_lr=2e-3),
    "ste-aug-slow": NetConfig(lr=2e-3, augment=True),
    "ste-aug-slow-scales": NetConfig(lr=2e-3, augment=True, learn_scales=True, scale_lr=2e-3),
}


def _augment(x, gen):
    """A random horizontal flip per image and one random shift of up to 4 pixels (zero padding) per batch."""
    import torch

    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy, dx = (int(v) for v in torch.randint(0, 9, (2,), generator=gen))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    return padded[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]


def tune(graph, plan, layers, scales: dict, rounded: dict, images: np.ndarray, cfg: NetConfig, log=print):
    """(rounded weights, scales, record): the hard rounding tuned against the FP32 logits of ``images``."""
    import torch

    from rtdeploy.precision.int8.qdq import quantize_weight
    from rtdeploy.precision.int8.soft_rounding import rectified_sigmoid
    from rtdeploy.precision.int8.torch_graph import dequantized_weights, unit_scales

    torch.manual_seed(cfg.seed)
    x_all = torch.from_numpy(images)
    with torch.no_grad():
        ref = torch.cat([graph.forward(x_all[i:i + 100]) for i in range(0, len(x_all), 100)])
    params, low, wscale = {}, {}, {}
    for node, layer in layers.items():
        w = layer.weight.astype(np.float32)
        _, s = quantize_weight(w, layer.unit.axis)
        shape = [1] * w.ndim
        shape[layer.unit.axis] = -1
        s = s.reshape(shape)
        q, _ = rounded[layer.unit.weight]
        lo = np.floor(w / s)
        up = np.clip(q.astype(np.float32) - lo, 0, 1)
        params[node] = torch.nn.Parameter(torch.from_numpy(np.where(up > 0.5, cfg.start_v, -cfg.start_v).astype(np.float32)))
        low[node], wscale[node] = torch.from_numpy(lo.astype(np.float32)), torch.from_numpy(s.astype(np.float32))
    observed = plan.observed()
    log_s = {t: torch.nn.Parameter(torch.tensor(float(np.log(scales[t])))) for t in observed}

    def weights():
        out = {}
        for n, v in params.items():
            h = rectified_sigmoid(v)
            hard = (v >= 0).float()
            out[n] = torch.clamp(low[n] + hard + (h - h.detach()), -128, 127) * wscale[n]
        return out

    def act():
        if cfg.learn_scales:
            return {(u.node, u.input_index): log_s[u.observe].exp() for u in plan.units}
        return unit_scales(plan, scales)

    def loss_of(out, target):
        lp = torch.log_softmax(out, 1)
        lt = torch.log_softmax(target, 1)
        kl = (lt.exp() * (lt - lp)).sum(1).mean()
        return kl + cfg.mse * ((out - target) ** 2).sum(1).mean() if cfg.mse else kl

    def full_loss() -> float:
        total = 0.0
        with torch.no_grad():
            w, a = weights(), act()
            for i in range(0, len(x_all), 100):
                total += float(loss_of(graph.forward(x_all[i:i + 100], a, w), ref[i:i + 100])) * len(x_all[i:i + 100])
        return total / len(x_all)

    start = full_loss()
    groups = [{"params": list(params.values()), "lr": cfg.lr if cfg.tune_weights else 0.0}]
    if cfg.learn_scales:
        groups.append({"params": list(log_s.values()), "lr": cfg.scale_lr})
    opt = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(x_all), (cfg.batch,), generator=gen)
        x, target = x_all[idx], ref[idx]
        if cfg.augment:
            x = _augment(x, gen)
            with torch.no_grad():
                target = graph.forward(x)
        loss = loss_of(graph.forward(x, act(), weights()), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            log(json.dumps({"step": step, "loss": round(loss.item(), 5), "s": round(time.perf_counter() - t0, 1)}))
    end = full_loss()
    record = {"loss_start": start, "loss_end": end, "seconds": round(time.perf_counter() - t0, 1), "config": vars(cfg)}
    if end >= start:
        record["kept"] = "start"
        return rounded, scales, record
    record["kept"] = "tuned"
    out = {}
    with torch.no_grad():
        for node, layer in layers.items():
            q = torch.clamp(low[node] + (params[node] >= 0).float(), -128, 127).numpy().astype(np.int8)
            out[layer.unit.weight] = (q, wscale[node].reshape(-1).numpy().astype(np.float32))
    new_scales = dict(scales)
    if cfg.learn_scales:
        new_scales.update({t: float(np.float32(p.detach().exp())) for t, p in log_s.items()})
    record["flipped"] = int(sum((out[k][0] != rounded[k][0]).sum() for k in out))
    return out, new_scales, record


def _setup(depth: int, root: Path, work: Path):
    import onnx

    sys.path.insert(0, str(HERE))
    from int8_reconstruct import _export

    from rtdeploy.artifacts import read_manifest
    from rtdeploy.data import open_source
    from rtdeploy.models import ModelMeta
    from rtdeploy.precision.int8.layers import weighted_layers
    from rtdeploy.precision.int8.qdq import plan_qdq
    from rtdeploy.precision.int8.torch_graph import TorchGraph

    fp32 = _export(depth, root, work)
    meta = ModelMeta.from_dict(read_manifest(fp32)["model"])
    model = onnx.load(str(fp32))
    plan = plan_qdq(model)
    calib = np.concatenate([b.images for b in open_source(root / "calib", meta).batches(250)]).astype(np.float32)
    return fp32, meta, model, plan, TorchGraph(model), weighted_layers(model, plan.units), calib


def _start(model, plan, fit):
    """The default calibration on ``fit``: mse scales, block reconstruction."""
    from int8_reconstruct import _calibrate

    from rtdeploy.precision.int8.collect import collect_stats

    stats = collect_stats(model, plan.observed(), (fit[i:i + 100] for i in range(0, len(fit), 100)), histogram=True)
    return _calibrate(model, plan, stats, "mse", "block", None, fit)


def heldout(args, root, work) -> dict:
    import torch

    from int8_reconstruct import _judge, _perturbed

    torch.set_num_threads(1)
    fp32, meta, model, plan, graph, layers, calib = _setup(args.depth, root, work)
    held = np.zeros(len(calib), bool)
    held[np.random.default_rng(1).choice(len(calib), 200, replace=False)] = True
    fit, judge = calib[~held], calib[held]
    judge_sets = _perturbed(judge)
    with torch.no_grad():
        refs = [graph.forward(torch.from_numpy(x)).numpy() for x in judge_sets]
    t = time.process_time()
    scales, rounded = _start(model, plan, fit)
    rows = [{"candidate": "mse + block (start)", "cpu_s": round(time.process_time() - t, 1),
             **_judge(graph, plan, layers, scales, rounded, judge_sets, refs)}]
    print(json.dumps(rows[-1]), flush=True)
    for name in args.configs:
        t = time.process_time()
        r2, s2, rec = tune(graph, plan, layers, scales, rounded, fit, CONFIGS[name])
        rows.append({"candidate": f"+ network {name}", "cpu_s": round(time.process_time() - t, 1), "record": rec,
                     **_judge(graph, plan, layers, s2, r2, judge_sets, refs)})
        print(json.dumps(rows[-1]), flush=True)
    return {"depth": args.depth, "fit_images": len(fit), "judge_images": len(judge), "rows": rows}


def dev(args, root, work) -> dict:
    import onnx
    import torch

    from rtdeploy.precision.int8.qdq import insert_qdq

    torch.set_num_threads(1)
    fp32, meta, model, plan, graph, layers, calib = _setup(args.depth, root, work)
    t, c = time.perf_counter(), time.process_time()
    scales, rounded = _start(model, plan, calib)
    start_s = (round(time.perf_counter() - t, 1), round(time.process_time() - c, 1))
    r2, s2, rec = tune(graph, plan, layers, scales, rounded, calib, CONFIGS[args.config])
    total_s = (round(time.perf_counter() - t, 1), round(time.process_time() - c, 1))
    evaluator = _dev_evaluator(fp32, root / "dev", meta)
    rows = []
    for label, sc, rw, secs in (("mse + block (start)", scales, rounded, start_s), (f"mse + block + network {args.config}", s2, r2, total_s)):
        path = work / f"r{args.depth}.{label.replace(' ', '').replace('+', '.')}.int8.onnx"
        onnx.save(insert_qdq(model, plan, {t_: sc[t_] for t_ in plan.observed()}, weights=rw), str(path))
        rows.append({"candidate": label, "calib_wall_s": secs[0], "calib_cpu_s": secs[1], **evaluator(path)})
        print(json.dumps(rows[-1]), flush=True)
    return {"depth": args.depth, "record": rec, "rows": rows, "peak_rss_mib": round(peak_rss_kib() / 1024, 1)}


def _dev_evaluator(fp32: Path, dev: Path, meta):
    """:class:`int8_reconstruct._DevEvaluator`'s dev/ images and FP32 logits; a model here has no
    manifest, so both agreements come from its own onnxruntime runs (all optimizations, and none)."""
    from int8_reconstruct import _DevEvaluator

    class Evaluator(_DevEvaluator):
        def __call__(self, path: Path) -> dict:
            row = {"fp32_accuracy": self.fp32_accuracy}
            for key, exact in (("", False), ("_exact", True)):
                top1 = self._logits(path, exact).argmax(1)
                row["agreement" + key] = round(float(np.mean(top1 == self.reference.argmax(1))), 5)
                row["drop_points" + key] = round(self.fp32_accuracy - float(np.mean(top1 == self.labels)) * 100, 2)
            return row

    return Evaluator(fp32, dev)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("section", choices=("heldout", "dev"))
    p.add_argument("--depth", type=int, default=56)
    p.add_argument("--configs", default="ste", type=lambda v: v.split(","))
    p.add_argument("--config", default="ste")
    p.add_argument("--workdir", default="/tmp/rtdeploy-int8-reconstruct")
    p.add_argument("--out", type=Path, default=HERE / "results" / "int8_network.json")
    args = p.parse_args()
    root = cifar10_root()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    from rtdeploy.machine import load_average

    run = {**machine("onnxruntime", "torch", "numpy"), "command": " ".join(sys.argv)}
    result = heldout(args, root, work) if args.section == "heldout" else dev(args, root, work)
    run["load_average_after"] = load_average()
    prior = json.loads(args.out.read_text()) if args.out.exists() else {}
    prior.setdefault(args.section, []).append({"run": run, **result})
    args.out.write_text(json.dumps(prior, indent=1) + "\n")


if __name__ == "__main__":
    main()
