"""``rtdeploy validate``: a model against its reference, on random inputs and optional images."""

from __future__ import annotations

from pathlib import Path

import click

from rtdeploy.cli.common import emit_json, format_table, handle_errors, json_option, passive_thread_waits, progress_option, say

# statistic -> tolerance field that limits it (None: reported only)
_ROWS = [
    ("max_abs_err", None), ("reference_range", None), ("mean_abs_err", None), ("max_abs_err_of_range", "max_abs"), ("max_rel_err", "max_rel"),
    ("cosine_mean", "cosine"), ("cosine_worst", "cosine_worst"), ("top1_agreement", "top1"), ("top5_agreement", "top5"),
    ("nonfinite", "nonfinite"), ("reference_accuracy", None), ("candidate_accuracy", None), ("accuracy_drop_points", "accuracy_drop"),
]


@click.command("validate")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--images", type=click.Path(path_type=Path), help="Folder of images (class subfolders give labels) or .npy/.npz tensors to compare on (FP32/FP16: besides random inputs; INT8: alone).")
@click.option("--samples", type=int, help="Random inputs to compare [default: 8]; with --images also a seeded subset of that many images [default: all].")
@click.option("--batch", type=int, default=8, show_default=True, help="Batch size fed to both models.")
@click.option("--reference", metavar="torch|onnx|PATH", help="Reference: the PyTorch model, the parent ONNX, or an ONNX file [default: parent ONNX if any, else PyTorch].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs and the image subset.")
@click.option("--provider", "providers", multiple=True, default=("cpu",), show_default=True, help="onnxruntime execution provider for the candidate (cpu, cuda, tensorrt).")
@click.option("--tol-cosine", type=float, help="Min mean cosine similarity.")
@click.option("--tol-cosine-worst", type=float, help="Min cosine similarity of the worst sample.")
@click.option("--tol-max-abs", type=float, help="Max absolute error as a fraction of the reference output range.")
@click.option("--tol-max-rel", type=float, help="Max relative error (not checked by default).")
@click.option("--tol-top1", type=float, help="Min top-1 agreement (0..1).")
@click.option("--tol-top5", type=float, help="Min top-5 agreement (0..1).")
@click.option("--tol-accuracy-drop", type=float, help="Max top-1 accuracy drop in points when labels are given.")
@progress_option()
@json_option("the report")
@handle_errors
def validate(model, images, samples, batch, reference, seed, providers, tol_cosine, tol_cosine_worst, tol_max_abs,
             tol_max_rel, tol_top1, tol_top5, tol_accuracy_drop, progress, json_out):
    """Compare MODEL (ONNX or TensorRT engine) with its reference on the same inputs.

    Reference: PyTorch rebuilt from the manifest for an FP32 export; the parent ONNX for FP16/INT8
    models and engines; an imported FP32 model is its own reference. Tolerances default per
    precision and INT8 target (fp32 tight, fp16 and int8 looser; docs/validation.md); any NaN/Inf
    fails. An INT8 model is judged on --images alone when given (random inputs lie outside its
    calibrated ranges). Exits 3 naming the worst statistic when out of tolerance.

    \b
    Examples:
      rtdeploy validate resnet50.onnx
      rtdeploy validate r56.onnx --images ../shared/data/cifar10/dev --samples 500
      rtdeploy validate r56.int8.onnx --images dev/ --tol-top1 0.9 --json report.json
    """
    passive_thread_waits()
    from rtdeploy import api

    tolerances = {"cosine": tol_cosine, "cosine_worst": tol_cosine_worst, "max_abs": tol_max_abs, "max_rel": tol_max_rel,
                  "top1": tol_top1, "top5": tol_top5, "accuracy_drop": tol_accuracy_drop}
    report = api.validate(model, images=images, samples=samples, batch=batch, reference=reference, tolerances=tolerances,
                          seed=seed, providers=tuple(providers), progress=progress)
    target = f", {report.target} target" if report.target else ""
    say(f"{report.model} ({report.precision}{target}, {report.candidate}) vs reference {report.reference}", json_out)
    if report.inputs_note:
        say(report.inputs_note, json_out)
    limits = report.tolerance.to_dict() | {"nonfinite": 0}
    for s in report.sets:
        say(f"\n{s.description}: {s.samples} samples, {s.seconds:.1f}s", json_out)
        say(format_table(_rows(s, limits), ["output", "statistic", "value", "limit", "status"]), json_out)
    emit_json(report.to_dict(), json_out)
    report.raise_for_failure()
    say("\nPASS: within tolerance", json_out)


def _rows(s, limits: dict) -> list[dict]:
    failed = {(f.output, f.statistic) for f in s.failures}
    rows = []
    for output, stats in s.outputs.items():
        for stat, field in _ROWS:
            value = stats.get(stat)
            if value is None:
                continue
            limit = limits.get(field) if field else None
            status = "FAIL" if (output, stat) in failed else ("ok" if limit is not None else "")
            rows.append({"output": output, "statistic": stat, "value": _fmt(stat, value), "limit": _fmt(stat, limit), "status": status})
        if stats.get("reference_nonfinite"):
            rows.append({"output": output, "statistic": "reference_nonfinite", "value": str(stats["reference_nonfinite"]), "limit": "0", "status": "FAIL"})
    return rows


def _fmt(stat: str, value) -> str | None:
    if value is None:
        return None
    if stat.endswith("_accuracy"):
        return f"{100 * value:.2f}%"
    if isinstance(value, int):
        return str(value)
    return f"{value:.7g}" if stat.startswith("cosine") else f"{value:.4g}"
