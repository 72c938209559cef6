"""What each timed artifact is, in words every table and plot can show.

Two INT8 models of one network differ in their calibrator and in the layers kept in float; both
are in the INT8 model's manifest (``quantization.method``, ``quantization.kept_fp``), and an engine
finds them through its ``parent`` chain. A result's ``label`` names the model, the precision and,
for INT8, the calibrator and the kept layers, so no two artifacts share a row, a bar or a line.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def quantization_facts(artifact: Path | None) -> dict | None:
    """``calibrator``, ``kept_fp`` (node names) and ``target`` (what the Q/DQ placement is for) of an INT8
    artifact, from its manifest chain; None for other artifacts, or when no manifest says."""
    if artifact is None:
        return None
    from rtdeploy.artifacts import ancestors
    from rtdeploy.errors import RtDeployError
    from rtdeploy.manifests import Int8Manifest, read_artifact

    try:
        for path in ancestors(artifact):  # the INT8 ONNX itself, or an engine's parent
            m = read_artifact(path, required=False)
            if isinstance(m, Int8Manifest):
                q = m.quantization
                # a manifest older than the target field names the form in its placement ("onnxruntime-cpu: ...")
                target = q.target if "target" in q.given or ":" not in q.placement else q.placement.split(":", 1)[0].strip()
                return {"calibrator": q.method, "kept_fp": m.kept_float(), "target": target}
    except (RtDeployError, OSError, ValueError):
        return None
    return None


def base_label(model: str, precision: str, quantization: dict | None) -> str:
    """``resnet50 int8 entropy, 2 kept in float`` (model, precision, and for INT8 the calibrator, the form
    when it is not TensorRT's — ``[onnxruntime-cpu form]`` — and the kept layers)."""
    label = f"{model} {precision}"
    if quantization:
        label += f" {quantization['calibrator'] or 'from calibration cache'}"
        if quantization.get("target", "tensorrt") != "tensorrt":
            label += f" [{quantization['target']} form]"
        kept = quantization["kept_fp"]
        if kept:
            label += f", {len(kept)} kept in float ({', '.join(kept[:3])}{', ...' if len(kept) > 3 else ''})"
    return label


def assign_labels(results: list[dict]) -> None:
    """Give every result a ``label`` that is unique among results of the same runner, batch and streams.

    Starts from :func:`base_label`; where two artifacts still collide (same model, precision and
    calibrator), the artifact's file name is added, then its sha256 prefix.
    """
    for r in results:
        r["label"] = base_label(r["model"], r["precision"], r.get("quantization"))
    for extra in (_file_name, _sha_prefix):
        keys = Counter(_slot_key(r) for r in results)
        for r in results:
            if keys[_slot_key(r)] > 1 and extra(r):
                r["label"] += f" [{extra(r)}]"


def _slot_key(r: dict) -> tuple:
    return r["label"], r["runner"], r["batch"], r.get("streams", 1), r["backend"]


def _file_name(r: dict) -> str | None:
    return Path(r["artifact"]["path"]).name if r.get("artifact") else None


def _sha_prefix(r: dict) -> str | None:
    return r["artifact"]["sha256"][:8] if r.get("artifact") else None
