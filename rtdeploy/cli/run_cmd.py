"""``rtdeploy run``: the whole pipeline in one command, into one report folder."""

from __future__ import annotations

from pathlib import Path

import click

from rtdeploy.cli.common import emit_json, handle_errors, json_option, model_option, passive_thread_waits, progress_option, say

STATUS_MARK = {"made": "made", "reused": "reused", "skipped": "skipped", "failed": "FAILED"}


@click.command("run")
@model_option()
@click.option("--onnx", type=click.Path(path_type=Path), help="Run on this ONNX (made by `rtdeploy export` or `rtdeploy import`) instead of exporting --model.")
@click.option("--weights", type=click.Path(path_type=Path), help="Trained checkpoint (loaded with weights_only=True); default: seed-0 initialisation.")
@click.option("--num-classes", type=int, help="Output classes (default 1000 ImageNet, 10 CIFAR).")
@click.option("--calib-dir", type=click.Path(path_type=Path), help="Calibration images or .npy/.npz; without --images a quarter of them is held out to validate on "
                   "[default: the photos bundled with rtdeploy].")
@click.option("--calib-size", type=int, help="Calibration images to use (seeded sample).")
@click.option("--method", type=click.Choice(["entropy", "max", "percentile", "mse"]), default="entropy", show_default=True, help="INT8 calibrator.")
@click.option("--keep-fp", type=int, default=0, show_default=True, help="INT8: keep the N most quantization-sensitive layers in float.")
@click.option("--images", type=click.Path(path_type=Path), help="Images to validate on (class subfolders give accuracy) [default: the calibration images held out from calibration].")
@click.option("--samples", type=int, help="Validation samples per input set.")
@click.option("--precision", default="fp32,fp16,int8", show_default=True, help="Precisions to produce.")
@click.option("--no-engines", is_flag=True, help="Do not build TensorRT engines even where TensorRT is present.")
@click.option("--no-bench", is_flag=True, help="Skip the benchmark stage.")
@click.option("--bench-duration", default="1s", show_default=True, help="Timed window per benchmark repeat.")
@click.option("--bench-batch", default="1", show_default=True, help="Benchmark batch sizes, e.g. 1,8.")
@click.option("-o", "--outdir", type=click.Path(path_type=Path), help="Report folder [default: rtdeploy-out/<model>].")
@click.option("--force", "force", is_flag=False, flag_value="all", default=None, metavar="[STAGE]",
              help="Redo STAGE (export, quantize, validate, build-engine, bench; comma list) and what depends on it; "
                   "--force alone redoes every stage.")
@click.option("--rebench", is_flag=True, help="Re-time the benchmark; reuse every other stage whose inputs are unchanged.")
@progress_option()
@json_option("the run summary")
@handle_errors
def run(model, onnx, weights, num_classes, calib_dir, calib_size, method, keep_fp, images, samples, precision, no_engines, no_bench,
        bench_duration, bench_batch, outdir, force, rebench, progress, json_out):
    """Run the whole pipeline: export, validate, FP16, INT8, engines, bench, report.

    Stages whose inputs have not changed since the last run in the same folder are reused, and
    each says why (the parent's sha256, the options and the calibration data's content must all
    match). --rebench re-times only; --force STAGE redoes a stage and what depends on it. On a machine without TensorRT the engine stage is skipped with the
    reason, and everything else still runs. Exit status is non-zero when a stage failed (for
    example a precision out of tolerance); the report is written either way.

    \b
    Examples:
      rtdeploy run --depth 50
      rtdeploy run --depth 56 --weights resnet56-4bfd9763.th --calib-dir cifar10/calib --images cifar10/dev --keep-fp 20
    """
    passive_thread_waits()
    from rtdeploy import api
    from rtdeploy.errors import RtDeployError

    def show(rec):
        say(f"[{STATUS_MARK.get(rec.status, rec.status):>7}] {rec.name:<20} {rec.seconds:7.1f}s  {rec.detail}", json_out)

    report = api.run(model=model, onnx=onnx, weights=weights, num_classes=num_classes, calib_dir=calib_dir, calib_size=calib_size,
                     method=method, keep_fp=keep_fp, images=images, samples=samples, precision=precision, engines=not no_engines,
                     bench=not no_bench, bench_duration=bench_duration, bench_batch=bench_batch, outdir=outdir,
                     force=force or False, rebench=rebench, progress=progress, on_stage=show)
    say(f"report: {report.report_md}", json_out)
    emit_json(report.to_dict(), json_out)
    if report.failed:
        first = report.failed[0]
        raise RtDeployError(f"{len(report.failed)} stage(s) failed, first {first.name}: {first.detail}")
