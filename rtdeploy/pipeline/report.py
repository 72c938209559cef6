"""The run folder's report: ``report.md`` (stages, validation, benchmark, plot) and ``report.json``."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from rtdeploy.artifacts import ENGINE_SUFFIXES
from rtdeploy.files import write_json_atomic, write_text_atomic
from rtdeploy.manifests import check_report
from rtdeploy.tables import format_table

# report.json's validation rows (fractions, as the validation reports hold them)
VALIDATION_COLUMNS = ["precision", "inputs", "samples", "cosine_mean", "cosine_worst", "top1_agreement", "max_abs_err",
                      "max_abs_err_of_range", "reference_accuracy", "candidate_accuracy", "verdict"]
# report.md's table: the same, for a person (percent, errors beside the output's range)
MD_COLUMNS = ["precision", "inputs", "samples", "cosine", "worst cos", "top-1 agree", "max err/range", "accuracy %", "verdict"]


def write_report(report, cfg) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.json`` into the run folder; returns their paths."""
    out = report.outdir
    data = {**report.to_dict(), "config": {k: str(v) if isinstance(v, Path) else v for k, v in cfg.__dict__.items()},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "validation": validation_rows(report), "validation_inputs": validation_inputs(report, cfg), "artifacts": _artifacts(out)}
    json_path = write_json_atomic(out / "report.json", check_report("run-report", data))
    md_path = write_text_atomic(out / "report.md", _markdown(report, cfg, data))
    return md_path, json_path


def validation_rows(report) -> list[dict]:
    """One row per precision and input set, from the validate stages' results."""
    rows = []
    for stage in report.stages:
        if not stage.name.startswith("validate-") or not isinstance(stage.result, dict):
            continue
        for s in stage.result.get("sets", []):
            for stats in s["outputs"].values():
                rows.append({"precision": stage.name.removeprefix("validate-"), "inputs": s["name"], "samples": s["samples"],
                             **{k: stats.get(k) for k in VALIDATION_COLUMNS[3:-1]},
                             "verdict": "pass" if not s["failures"] else "FAIL"})
    return rows


def _md_row(row: dict) -> dict:
    """One validation row as a person reads it: agreement and accuracy in percent, the largest
    error as a percentage of the reference output's range (its absolute value is in report.json)."""
    pct = lambda v, digits=1: None if v is None else f"{100 * v:.{digits}f}%"  # noqa: E731
    cos = lambda v: None if v is None else f"{v:.6f}"[:8]  # noqa: E731
    acc = None
    if row["reference_accuracy"] is not None:
        acc = f"{100 * row['reference_accuracy']:.1f} -> {100 * row['candidate_accuracy']:.1f}"
    err = None if row["max_abs_err_of_range"] is None else f"{100 * row['max_abs_err_of_range']:.2g}%"
    return {"precision": row["precision"], "inputs": row["inputs"], "samples": row["samples"], "cosine": cos(row["cosine_mean"]),
            "worst cos": cos(row["cosine_worst"]), "top-1 agree": pct(row["top1_agreement"]), "max err/range": err,
            "accuracy %": acc, "verdict": row["verdict"]}


def validation_inputs(report, cfg) -> dict | None:
    """What the validations compared on (``--images``, the held-out part of the calibration images,
    or random inputs), from the first validation that ran."""
    for stage in report.stages:
        if stage.name.startswith("validate-") and isinstance(stage.result, dict):
            real = [s for s in stage.result["sets"] if s["name"] != "random"]
            if real:
                return {"kind": real[0]["name"], "description": real[0]["description"], "samples": real[0]["samples"],
                        "note": stage.result.get("inputs_note")}
            return {"kind": "random", "description": stage.result["sets"][0]["description"],
                    "samples": stage.result["sets"][0]["samples"], "note": stage.result.get("inputs_note")}
    return None


def _artifacts(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.suffix in (".onnx", *ENGINE_SUFFIXES) or p.name.endswith(".onnx.json"))


def _markdown(report, cfg, data: dict) -> str:
    stage_rows = [{"stage": s.name, "status": s.status, "seconds": s.seconds, "detail": s.detail} for s in report.stages]
    parts = [
        f"# rtdeploy run: {cfg.name}", "",
        f"- created: {data['created']}", f"- model: {_model_line(report, cfg)}",
        f"- calibration data: {_calibration_line(cfg)}",
        "", "## Stages", "", _code(format_table(stage_rows)),
        "", "## Validation (candidate vs reference)", "",
    ]
    if data["validation"]:
        parts += [_inputs_line(data["validation_inputs"]), "", _code(format_table([_md_row(r) for r in data["validation"]], MD_COLUMNS))]
        parts += [f"- {line}" for line in _validation_notes(report)]
    else:
        parts.append("(no validation ran)")
    bench_md = report.outdir / "bench.md"
    if bench_md.exists():
        parts += ["", "## Benchmark", "", _demote_headings(bench_md.read_text(encoding="utf-8"))]
    if (report.outdir / "bench.png").exists():
        parts += ["", "![throughput and latency](bench.png)"]
    skipped = [s for s in report.stages if s.status == "skipped"]
    if skipped:
        parts += ["", "## Not run here", ""] + [f"- {s.name}: {s.detail}" for s in skipped]
    parts += ["", "## Artifacts (each with its manifest beside it)", ""] + [f"- {a}" for a in data["artifacts"]]
    return "\n".join(parts) + "\n"


def _model_line(report, cfg) -> str:
    """What model the run converted: the user's imported ONNX, trained weights, or a seed-0 initialisation."""
    if cfg.onnx is not None:
        return (f"{cfg.onnx}, brought by the user (`rtdeploy import`): its own weights; FP32 is the reference the other "
                "precisions are compared with")
    if cfg.weights:
        return f"{cfg.name} with the trained weights {cfg.weights}"
    return (f"{cfg.name}, no weights given: a seed-0 initialised model, so agreement and error figures check the "
            "conversion, not task accuracy")


def _calibration_line(cfg) -> str:
    if cfg.calib_dir is not None:
        return str(cfg.calib_dir)
    from rtdeploy.precision.calibration_data import bundled_calib_dir

    return f"the bundled photos ({bundled_calib_dir()}); real deployments should calibrate on their own data"


def _inputs_line(inputs: dict | None) -> str:
    if inputs is None:
        return ""
    if inputs["kind"] == "held-out":
        return (f"Compared on {inputs['description']}: never calibrated on (rtdeploy run holds a quarter of the calibration "
                "images out when --images is not given).")
    if inputs["kind"] == "random":
        why = inputs["note"] or "no real inputs given"
        return (f"**The verdicts rest on synthetic inputs** ({inputs['description']}): {why}. On random inputs an INT8 "
                "model is checked for gross errors only (docs/validation.md).")
    return f"Compared on {inputs['description']}."


SMALL_SET = 100  # below this many samples, one changed class moves agreement by a point or more


def _validation_notes(report) -> list[str]:
    notes = []
    sizes = [s["samples"] for st in report.stages if st.name.startswith("validate-") and isinstance(st.result, dict)
             for s in st.result["sets"] if s["name"] != "random"]
    if sizes and min(sizes) < SMALL_SET:
        n = min(sizes)
        notes.append(f"on {n} images one changed class moves top-1 agreement (and, labelled, accuracy) by {100 / n:.1f} points: "
                     "those are judged against their limits with a binomial test, and the cosines carry the verdict "
                     "(docs/validation.md)")
    for stage in report.stages:
        if stage.name.startswith("validate-") and isinstance(stage.result, dict) and stage.result["reference"].startswith("itself"):
            notes.append(f"{stage.name.removeprefix('validate-')}: the imported model is the reference, so its check covers finite "
                         "outputs and, with labelled images, accuracy; there is nothing to agree with")
    return notes


def _demote_headings(markdown: str) -> str:
    return "\n".join("##" + line if line.startswith("#") else line for line in markdown.splitlines())


def _code(text: str) -> str:
    return f"```\n{text}\n```"
