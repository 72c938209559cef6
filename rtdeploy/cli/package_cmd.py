"""``rtdeploy package --triton DIR``: a Triton Inference Server model repository."""

from __future__ import annotations

import click

from rtdeploy.cli.generate import command
from rtdeploy.serving.package import PackageConfig


@command("package", PackageConfig)
def package(**options):
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

    version = options.get("version", 1)
    api.package(**options, show=lambda dest: click.echo(f"wrote Triton model {dest} (config.pbtxt + {version}/)"))
