"""The run folder's report: ``report.md`` (stages, validation, benchmark, plot) and ``report.json``."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from rtdeploy.artifacts import ENGINE_SUFFIXES
from rtdeploy.files import write_json_atomic, write_text_atomic
from rtdeploy.manifests import check_report
from rtdeploy.tables import format_table

VALIDATION_COLUMNS = ["precision", "inputs", "samples", "cosine_worst", "top1_agreement", "max_abs_err",
                      "reference_accuracy", "candidate_accuracy", "verdict"]


def write_report(report, cfg) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.json`` into the run folder; returns their paths."""
    out = report.outdir
    data = {**report.to_dict(), "config": {k: str(v) if isinstance(v, Path) else v for k, v in cfg.__dict__.items()},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "validation": validation_rows(report), "artifacts": _artifacts(out)}
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


def _artifacts(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.suffix in (".onnx", *ENGINE_SUFFIXES) or p.name.endswith(".onnx.json"))


def _markdown(report, cfg, data: dict) -> str:
    stage_rows = [{"stage": s.name, "status": s.status, "seconds": s.seconds, "detail": s.detail} for s in report.stages]
    weights = str(cfg.weights) if cfg.weights else "none given: a seed-0 initialised model, so agreement and error " \
        "figures check the conversion, not task accuracy"
    parts = [
        f"# rtdeploy run: {cfg.name}", "",
        f"- created: {data['created']}", f"- weights: {weights}",
        f"- calibration data: {cfg.calib_dir or 'the bundled calib_data/ (real deployments should calibrate on their own data)'}",
        "", "## Stages", "", _code(format_table(stage_rows)),
        "", "## Validation (candidate vs reference)", "",
        _code(format_table(data["validation"], VALIDATION_COLUMNS)) if data["validation"] else "(no validation ran)",
    ]
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


def _demote_headings(markdown: str) -> str:
    return "\n".join("##" + line if line.startswith("#") else line for line in markdown.splitlines())


def _code(text: str) -> str:
    return f"```\n{text}\n```"
