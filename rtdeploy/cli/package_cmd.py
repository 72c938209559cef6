"""``rtdeploy package --triton DIR``: a Triton Inference Server model repository."""

from __future__ import annotations

import click

from rtdeploy.cli.generate import command
from rtdeploy.serving.package import PackageConfig


@command("package", PackageConfig)
def package(**options):
    """Package ARTIFACT (an rtdeploy .onnx or .plan/.engine) for Triton Inference Server.

    Writes DIR/<name>/config.pbtxt and DIR/<name>/<version>/model.onnx (backend onnxruntime) or
    model.plan (platform tensorrt_plan). An engine only runs on the TensorRT version and GPU
    it was built for: use a Triton release that ships the same TensorRT.

    \b
    Examples:
      rtdeploy package resnet50.onnx --triton models/ --kind cpu
      rtdeploy package resnet50.int8.plan --triton models/ --preferred-batch 8,16
    """
    from rtdeploy import api

    version = options.get("version", 1)
    api.package(**options, show=lambda dest: click.echo(f"wrote Triton model {dest} (config.pbtxt + {version}/)"))
