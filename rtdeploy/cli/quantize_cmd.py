"""``rtdeploy quantize``: FP32 ONNX -> calibrated INT8 (explicit Q/DQ) or FP16 ONNX, with manifest."""

from __future__ import annotations

from rtdeploy.cli.common import say
from rtdeploy.cli.generate import command
from rtdeploy.precision.quantize import QuantizeConfig


@command("quantize", QuantizeConfig)
def quantize(**options):
    """Make an INT8 (Q/DQ) or FP16 ONNX from an FP32 ONNX made by `rtdeploy export`.

    INT8: activation statistics are gathered with onnxruntime on the calibration images (cached, so
    another --method reuses them); weights are int8 per output channel, activations per tensor;
    Q/DQ sits on the inputs of Conv/Gemm and on the shortcut input of residual Adds, as TensorRT
    fuses them. FP16: activations that would overflow FP16 on the calibration images keep their
    ops in FP32. Writes MODEL.int8.onnx (MODEL.int8-cpu.onnx for --target onnxruntime-cpu) or
    MODEL.fp16.onnx and its manifest (parent, data fingerprint, scales, layers kept in floating point).

    \b
    Examples:
      rtdeploy quantize resnet50.onnx --int8
      rtdeploy quantize r56.onnx --int8 --calib-dir calib/ --keep-fp 20
      rtdeploy quantize r56.onnx --int8 --calib-dir calib/ --weights adaround --method consumer-mse
      rtdeploy quantize r56.onnx --int8 --calib-dir calib/ --target-agreement 0.995
      rtdeploy quantize resnet50.onnx --int8 --trt-cache resnet50.calib
      rtdeploy quantize resnet50.onnx --int8 --from-trt-cache resnet50.calib
      rtdeploy quantize resnet50.onnx --int8 --target onnxruntime-cpu
      rtdeploy quantize resnet50.onnx --int8 --high-precision fp16
      rtdeploy quantize resnet50.onnx --fp16
    """
    from rtdeploy import api

    api.quantize(**options, show=lambda r: say(_summary(r.report), options.get("json")))


def _summary(r: dict) -> str:
    seconds = sum(r.get("seconds", {}).values())
    if r["precision"] == "fp16":
        kept = f"; kept in FP32 (overflow): {', '.join(r['kept_fp32'])}" if r["kept_fp32"] else "; no op needed FP32"
        return (f"wrote {r['output']} (FP16, {r['io'].upper()} I/O, max |activation| {r['max_abs_activation']:.4g} on "
                f"{r['images']} images{kept}; {seconds:.1f}s)")
    source = f"{r['method']} on {r['images']} images" if r.get("method") else "scales from the TensorRT cache"
    if r.get("weight_rounding") not in (None, "nearest"):
        source += f", {r['weight_rounding']} weights"
    if r.get("target", "tensorrt") != "tensorrt":
        source += f", for {r['target']}"
    if r.get("high_precision", "fp32") != "fp32":
        source += f", float parts {r['high_precision'].upper()}"
    lines = [f"wrote {r['output']} (INT8, {source}; {r['quantized_layers']}/{r['layers']} layers int8, "
             f"{r['qdq_nodes']['QuantizeLinear']} Q / {r['qdq_nodes']['DequantizeLinear']} DQ; {seconds:.1f}s)"]
    if r.get("left_in_float"):
        ops = sorted({f["op_type"] for f in r["left_in_float"]})
        lines.append(f"left in float (no Q/DQ rule): {len(r['left_in_float'])} node(s), {', '.join(ops)}; see the report's left_in_float")
    if r.get("kept_fp"):
        lines.append(f"kept in floating point: {', '.join(r['kept_fp'])}")
    if r.get("held_out_agreement") is not None:
        lines.append(f"held-out top-1 agreement with FP32: {r['held_out_agreement'] * 100:.2f}% on {r['held_out']} images")
    if r.get("trt_cache"):
        lines.append(f"wrote TensorRT calibration cache {r['trt_cache']}")
    return "\n".join(lines)
