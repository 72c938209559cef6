"""``rtdeploy package --triton DIR``: a Triton Inference Server model repository."""

from __future__ import annotations

from pathlib import Path

import click

from rtdeploy.cli.common import handle_errors


def _batches(value: str | None) -> tuple[int, ...]:
    """``"4,8,16"`` -> (4, 8, 16); empty -> ().

    Raises:
        PackageError: not a list of positive integers.
    """
    from rtdeploy.errors import PackageError

    if value is None:
        return ()
    from rtdeploy.checks import comma_list, is_ascii_int

    items = comma_list(value, "--preferred-batch", PackageError, example="4,8")
    sizes = tuple(int(v) for v in items) if all(is_ascii_int(v) for v in items) else ()
    if not sizes or any(s < 1 for s in sizes):
        raise PackageError(f"--preferred-batch {value!r} is not accepted; give positive batch sizes, comma-separated, such as 4,8")
    return sizes


@click.command("package")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--triton", "repo", required=True, type=click.Path(path_type=Path), help="Model repository folder to write into.")
@click.option("--name", help="Triton model name [default: from the file name, e.g. resnet50_int8].")
@click.option("--version", "model_version", type=int, default=1, show_default=True, help="Model version folder.")
@click.option("--max-batch", type=int, help="max_batch_size [default: the engine profile's max, or 32 for a dynamic ONNX; "
              "0 where Triton must not batch: a fixed batch, an engine of one batch size].")
@click.option("--preferred-batch", help="Preferred batch sizes for dynamic batching, e.g. 4,8,16.")
@click.option("--max-queue-delay-us", type=int, default=100, show_default=True, help="Dynamic batching queue delay.")
@click.option("--instances", type=int, default=1, show_default=True, help="Model instances per device.")
@click.option("--kind", type=click.Choice(["gpu", "cpu"]), default="gpu", show_default=True, help="Instance kind (ONNX models can serve on CPU).")
@click.option("--force", is_flag=True, help="Replace an existing model folder of the same name.")
@handle_errors
def package(artifact, repo, name, model_version, max_batch, preferred_batch, max_queue_delay_us, instances, kind, force):
    """Package ARTIFACT (an rtdeploy .onnx or .plan/.engine) for Triton Inference Server.

    Writes DIR/<name>/config.pbtxt and DIR/<name>/<version>/model.onnx (backend onnxruntime) or
    model.plan (platform tensorrt_plan). Every request Triton accepts under the config is one the
    model runs: an engine of one batch size N gets max_batch_size 0 and inputs of batch N, one whose
    profile starts above 1 otherwise is refused; INT8 Q/DQ ONNX on GPUs goes through onnxruntime's
    TensorRT accelerator. An engine only runs on the TensorRT version and GPU it was built for: use a
    Triton release that ships the same TensorRT (docs/triton.md).

    \b
    Examples:
      rtdeploy package resnet50.onnx --triton models/ --kind cpu
      rtdeploy package resnet50.int8.plan --triton models/ --preferred-batch 8,16
    """
    from rtdeploy import api

    dest = api.package(artifact, triton=repo, name=name, version=model_version, max_batch=max_batch,
                       preferred_batch=_batches(preferred_batch), max_queue_delay_us=max_queue_delay_us,
                       instances=instances, kind=kind, force=force)
    click.echo(f"wrote Triton model {dest} (config.pbtxt + {model_version}/)")
