"""``rtdeploy validate``: a model against its reference, on random inputs and optional images."""

from __future__ import annotations

from rtdeploy.cli.common import passive_thread_waits, say
from rtdeploy.cli.generate import command
from rtdeploy.tables import format_table
from rtdeploy.validate.options import ValidateConfig

# statistic -> tolerance field that limits it (None: reported only)
_ROWS = [
    ("max_abs_err", None), ("reference_range", None), ("mean_abs_err", None), ("max_abs_err_of_range", "max_abs"), ("max_rel_err", "max_rel"),
    ("cosine_mean", "cosine"), ("cosine_worst", "cosine_worst"), ("top1_agreement", "top1"), ("top5_agreement", "top5"),
    ("nonfinite", "nonfinite"), ("reference_accuracy", None), ("candidate_accuracy", None), ("accuracy_drop_points", "accuracy_drop"),
]


@command("validate", ValidateConfig)
def validate(**options):
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

    json_out = options.get("json")

    def show(report):
        target = f", {report.target} target" if report.target else ""
        say(f"{report.model} ({report.precision}{target}, {report.candidate}) vs reference {report.reference}", json_out)
        if report.inputs_note:
            say(report.inputs_note, json_out)
        limits = report.tolerance.to_dict() | {"nonfinite": 0}
        for s in report.sets:
            say(f"\n{s.description}: {s.samples} samples, {s.seconds:.1f}s", json_out)
            say(format_table(_rows(s, limits), ["output", "statistic", "value", "limit", "status"]), json_out)

    report = api.validate(**options, show=show)
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
