"""Notes that explain a result a reader would otherwise misread.

A TensorRT batch timed on an engine tuned for another batch (:func:`tuned_for_note`), and an INT8 Q/DQ model slower than its FP32 parent on onnxruntime's CPU provider.
rtdeploy's default Q/DQ placement is made for TensorRT's explicit quantization (Q/DQ on the inputs of
convolutions and on residual adds, fused by TensorRT into INT8 kernels). onnxruntime's CPU provider
does not turn that graph into faster kernels — on the project's CPU the INT8 models run 1.3-2x slower
than FP32 — so the slowdown says nothing about INT8 on TensorRT, and CPU serving needs a model
quantized for onnxruntime's CPU kernels instead.
"""

from __future__ import annotations

CPU_QUANTIZE = "rtdeploy quantize --int8 --target onnxruntime-cpu"


def tuned_for(result: dict) -> int | None:
    """The batch a TensorRT result's engine was tuned for (its profile's OPT), when it is not the batch timed."""
    profile = (result.get("settings") or {}).get("profile")
    opt = int(profile.split(":")[1]) if profile else None
    return opt if opt is not None and opt != result["batch"] else None


def tuned_for_note(results: list[dict]) -> str | None:
    """A note when some TensorRT batch was timed on an engine tuned for another batch (a given engine's profile)."""
    off = [r for r in results if tuned_for(r) is not None]
    if not off:
        return None
    return (f"{len(off)} TensorRT result(s) were timed on an engine tuned for another batch (column 'tuned for', the profile's "
            "OPT): TensorRT chose its kernels for that batch. trtexec --shapes and MLPerf time each batch on an engine built "
            "for it; rebuild with --batch N for each N (rtdeploy bench --depth builds them so) before comparing with them")


def int8_cpu_note(results: list[dict]) -> str | None:
    """One line when an INT8 model placed for TensorRT runs slower than its FP32 parent on onnxruntime CPU
    (same model, batch and streams); None otherwise."""
    fp32 = {_key(r): r for r in results if _on_ort_cpu(r) and r["precision"] == "fp32"}
    slower = []
    for r in results:
        if not (_on_ort_cpu(r) and r["precision"] == "int8"):
            continue
        target = (r.get("quantization") or {}).get("target") or "tensorrt"
        parent = fp32.get(_key(r))
        if parent is not None and target.startswith("tensorrt") and r["latency_ms"] > parent["latency_ms"]:
            streams = f" x{r['streams']} streams" if r.get("streams", 1) > 1 else ""
            slower.append(f"{r['model']} b{r['batch']}{streams}: {r['latency_ms']:.4g} vs {parent['latency_ms']:.4g} ms")
    if not slower:
        return None
    shown = "; ".join(slower[:3]) + ("; ..." if len(slower) > 3 else "")
    return (f"INT8 is slower than FP32 on onnxruntime CPU here ({shown}): these Q/DQ graphs are placed for TensorRT, "
            f"which fuses them into INT8 kernels, and are not what onnxruntime's CPU kernels accelerate; "
            f"for CPU serving use `{CPU_QUANTIZE}`, and time this INT8 model on TensorRT")


def _on_ort_cpu(r: dict) -> bool:
    return r["backend"] == "onnxruntime" and r["device"] == "cpu"


def _key(r: dict) -> tuple:
    return r["model"], r["image_size"], r["batch"], r.get("streams", 1)
