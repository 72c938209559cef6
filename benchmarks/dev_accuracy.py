"""Shared by the INT8 benchmark scripts: one model's accuracy figures on the labelled dev images."""

from __future__ import annotations

from pathlib import Path


def evaluate(path: Path, dev: Path) -> dict:
    """``rtdeploy validate`` on ``dev``: images, top-1 agreement with the reference, both accuracies, the drop."""
    from rtdeploy import api

    report = api.validate(path, images=dev).to_dict()
    images = next(s for s in report["sets"] if s["name"] == "images")
    st = next(iter(images["outputs"].values()))
    return {"images": images["samples"], "agreement": round(st["top1_agreement"], 5), "fp32_accuracy": round(st["reference_accuracy"] * 100, 2),
            "accuracy": round(st["candidate_accuracy"] * 100, 2), "drop_points": round(st["accuracy_drop_points"], 2)}


def evaluate_foreign(path: Path, fp32: Path, dev: Path) -> dict:
    """:func:`evaluate`'s figures for a model another tool wrote (no rtdeploy manifest): ``path`` and
    its FP32 parent ``fp32`` run on onnxruntime CPU with all optimizations (as ``rtdeploy validate``
    runs them), on ``dev`` preprocessed as the parent's manifest says."""
    import numpy as np
    import onnxruntime as ort

    from rtdeploy.artifacts import read_manifest
    from rtdeploy.data import open_source
    from rtdeploy.models import ModelMeta

    parts = list(open_source(dev, ModelMeta.from_dict(read_manifest(fp32)["model"])).batches(100))
    images, labels = np.concatenate([b.images for b in parts]), np.concatenate([b.labels for b in parts])

    def top1(model: Path):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: images[i:i + 100]})[0] for i in range(0, len(images), 100)]).argmax(1)

    ref, out = top1(fp32), top1(path)
    fp32_acc, acc = float(np.mean(ref == labels)) * 100, float(np.mean(out == labels)) * 100
    return {"images": len(images), "agreement": round(float(np.mean(out == ref)), 5), "fp32_accuracy": round(fp32_acc, 2),
            "accuracy": round(acc, 2), "drop_points": round(fp32_acc - acc, 2)}
