"""``rtdeploy build-engine``: ONNX (exported and quantized as needed) -> TensorRT engine + manifest."""

from __future__ import annotations

from pathlib import Path

import click

from rtdeploy.cli.common import emit_json, handle_errors, json_option, model_option, progress_option, say


@click.command("build-engine")
@model_option(default_text="resnet50, when no --onnx")
@click.option("--onnx", type=click.Path(path_type=Path), help="Build from this ONNX (FP32, FP16 graph or INT8 Q/DQ) instead of exporting --depth (default 50).")
@click.option("--fp32", "precision_fp32", is_flag=True, help="FP32 engine.")
@click.option("--fp16", "precision_fp16", is_flag=True, help="FP16 engine (from an FP16 ONNX graph, made if needed).")
@click.option("--int8", "precision_int8", is_flag=True, help="INT8 engine (from a calibrated Q/DQ ONNX, made if needed).")
@click.option("--calib-dir", type=click.Path(path_type=Path), help="INT8 calibration images or .npy/.npz (default: the quantize stage's data).")
@click.option("--no-calibrate", is_flag=True, help="Never calibrate: --int8 then needs a Q/DQ ONNX.")
@click.option("--implicit-calibration", is_flag=True, help="INT8 by TensorRT's entropy calibrator on the FP32 graph (TensorRT 8.6/10.x only).")
@click.option("--batch", metavar="MIN:OPT:MAX", help="Batch profile, or N for a static one [default: the ONNX's fixed batch, else 1:8:32].")
@click.option("--workspace", metavar="SIZE", help="Builder workspace limit, e.g. 2G [default: TensorRT's; half of free memory on Jetson].")
@click.option("--timing-cache", type=click.Path(path_type=Path), help="Timing cache file, read and updated (faster rebuilds).")
@click.option("--builder-optimization-level", type=int, help="0..5; higher searches longer for faster kernels [TensorRT default 3].")
@click.option("--dla-core", type=int, help="Build for this DLA core (Jetson); needs a static --batch N.")
@click.option("--gpu-fallback", is_flag=True, help="With --dla-core: run layers DLA cannot run on the GPU.")
@click.option("--version-compatible", is_flag=True, help="Plan that later TensorRT runtimes can load.")
@click.option("--hardware-compatibility", type=click.Choice(["ampere+", "same-cc"]), help="Plan for all Ampere+ GPUs, or any GPU of this compute capability.")
@click.option("--tf32", is_flag=True, help="Let FP32 layers run TF32 tensor-core kernels (TensorRT's default; rtdeploy clears it so FP32 is FP32).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Engine file [default: <onnx stem>.<precision>.engine beside the ONNX].")
@progress_option()
@json_option("the manifest")
@handle_errors
def build_engine(model, onnx, precision_fp32, precision_fp16, precision_int8, calib_dir, no_calibrate, implicit_calibration, batch, workspace, timing_cache,
                 builder_optimization_level, dla_core, gpu_fallback, version_compatible, hardware_compatibility, tf32, output, progress, json_out):
    """Build a TensorRT engine (a plain plan file) and its JSON manifest.

    Exports and quantizes as needed (reusing artifacts whose manifests match), parses the ONNX,
    builds with the API of the installed TensorRT (8.6, 10.x or 11.x), then checks each layer's
    precision and fails if INT8/FP16 was asked but not built. Without TensorRT or a GPU it still
    writes the precision ONNX and says how to build it elsewhere.

    \b
    Examples:
      rtdeploy build-engine --depth 50 --int8 --calib-dir calib/
      rtdeploy build-engine --onnx resnet50.fp16.onnx --batch 1:16:64 --timing-cache trt.cache
      rtdeploy build-engine --onnx r18.onnx --int8 --dla-core 0 --gpu-fallback --batch 8
    """
    from rtdeploy import api
    from rtdeploy.errors import UsageError

    # three flags, not one flag_value option: click keeps only the last of those, so `--fp16 --int8` would pass as INT8
    chosen = [p for p, on in (("fp32", precision_fp32), ("fp16", precision_fp16), ("int8", precision_int8)) if on]
    if len(chosen) > 1:
        raise UsageError(f"give one of --fp32, --fp16 or --int8, not {' and '.join('--' + p for p in chosen)}")
    precision = chosen[0] if chosen else None
    if model is not None and onnx is not None:
        raise UsageError(f"give --depth or --onnx, not both (got --model/--depth {model} and --onnx {onnx}; --model NAME is the long form of --depth)")
    result = api.build_engine(onnx, model=model, precision=precision, calib_dir=calib_dir, calibrate=not no_calibrate,
                              batch=batch, workspace=workspace, timing_cache=timing_cache,
                              builder_optimization_level=builder_optimization_level, dla_core=dla_core, gpu_fallback=gpu_fallback,
                              version_compatible=version_compatible, hardware_compatibility=hardware_compatibility,
                              implicit_calibration=implicit_calibration, output=output, progress=progress, tf32=tf32)
    m = result.manifest
    counts = ", ".join(f"{n} {p.upper()}" for p, n in sorted(m["layers"]["by_precision"].items()))
    placement = f", DLA {m['dla']['dla']} / GPU {m['dla']['gpu']} layers" if m.get("dla") else ""
    say(f"wrote {result.path} ({m['bytes'] / 1e6:.1f} MB, TensorRT {m['tensorrt']['version']}, {m['precision']}, "
               f"batch {m['profile']['min']}:{m['profile']['opt']}:{m['profile']['max']}, layers: {counts}{placement}, "
               f"{m['build']['seconds']:.1f}s)", json_out)
    emit_json(m, json_out)
