"""``rtdeploy quantize``: FP32 ONNX -> calibrated INT8 (explicit Q/DQ) or FP16 ONNX, with manifest."""

from __future__ import annotations

from pathlib import Path

import click

from rtdeploy.cli.common import emit_json, handle_errors, json_option, progress_option, say


@click.command("quantize")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--int8", is_flag=True, help="Calibrated INT8 with Q/DQ nodes placed for TensorRT.")
@click.option("--fp16", is_flag=True, help="FP16 graph (overflowing ops kept in FP32).")
@click.option("--calib-dir", type=click.Path(path_type=Path), help="Calibration images (folder, recursive) or .npy/.npz [default: the photos bundled with rtdeploy].")
@click.option("--method", type=click.Choice(["entropy", "max", "percentile", "mse", "consumer-mse"]), default="entropy", show_default=True,
              help="INT8 activation calibrator (consumer-mse: the threshold minimising the error of the ops that read each tensor).")
@click.option("--percentile", type=float, default=99.99, show_default=True, help="Percentile for --method percentile, in (0, 100].")
@click.option("--calib-size", type=int, help="Number of calibration images (seeded random subset) [default: all, up to 1000].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the subset and of the held-out split.")
@click.option("--keep-fp", type=int, default=0, show_default=True, help="Keep the N most quantization-sensitive layers in floating point.")
@click.option("--target-agreement", type=float, help="Keep layers in FP until held-out top-1 agreement with FP32 reaches this fraction (e.g. 0.99).")
@click.option("--fp16-io", is_flag=True, help="FP16 inputs and outputs (default: FP32 I/O with casts).")
@click.option("--trt-cache", type=click.Path(path_type=Path), help="Also write a TensorRT calibration cache (TRT-<ver>-EntropyCalibration2) here.")
@click.option("--from-trt-cache", type=click.Path(path_type=Path), help="Take activation scales from this TensorRT calibration cache (no calibration).")
@click.option("--trt-version", default="8601", show_default=True, help="TensorRT version written in the cache header (8601 = 8.6.1).")
@click.option("--target", type=click.Choice(["tensorrt", "onnxruntime-cpu"]), default="tensorrt", show_default=True, help="INT8 form: Q/DQ placed for TensorRT, or uint8 Q/DQ that onnxruntime's CPU kernels fuse.")
@click.option("--high-precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True, help="Type of the float parts of an INT8 --target tensorrt graph (fp16: INT8+FP16 in a strongly typed build).")
@click.option("--no-stats-cache", is_flag=True, help="Do not read or write the collected-statistics cache (~/.cache/rtdeploy).")
@progress_option()
@click.option("--weights", type=click.Choice(["nearest", "adaround"]), default="nearest", show_default=True,
              help="INT8 weight rounding: to nearest, or adaptive (each weight up or down to minimise its layer's output error).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Model to write [default: X.int8.onnx / X.fp16.onnx beside X.onnx].")
@json_option("the report")
@handle_errors
def quantize(model, int8, fp16, calib_dir, method, percentile, calib_size, seed, keep_fp, target_agreement, fp16_io,
             trt_cache, from_trt_cache, trt_version, target, high_precision, no_stats_cache, progress, weights, output, json_out):
    """Make an INT8 (Q/DQ) or FP16 ONNX from an FP32 ONNX made by `rtdeploy export`.

    INT8: activation statistics are gathered with onnxruntime on the calibration images (cached, so
    another --method reuses them); weights are int8 per output channel, activations per tensor;
    Q/DQ sits on the inputs of Conv/Gemm and on the shortcut input of residual Adds, as TensorRT
    fuses them. FP16: activations that would overflow FP16 on the calibration images keep their
    ops in FP32. Writes MODEL.<precision>.onnx and its manifest (parent, data fingerprint, scales,
    layers kept in floating point).

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

    result = api.quantize(model, int8=int8, fp16=fp16, calib_dir=calib_dir, method=method, percentile=percentile,
                          calib_size=calib_size, seed=seed, keep_fp=keep_fp, target_agreement=target_agreement,
                          fp16_io=fp16_io, trt_cache=trt_cache, from_trt_cache=from_trt_cache, trt_version=trt_version,
                          output=output, stats_cache=not no_stats_cache, progress=progress, weights=weights, target=target,
                          high_precision=high_precision)
    say(_summary(result.report), json_out)
    emit_json(result.report, json_out)


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
