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
