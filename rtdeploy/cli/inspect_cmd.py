"""``rtdeploy inspect``: which precision each compute layer of an engine really runs in."""

from __future__ import annotations

import click

from rtdeploy.cli.generate import command
from rtdeploy.errors import ValidationFailed
from rtdeploy.trt.inspect_options import InspectConfig


@command("inspect", InspectConfig)
def inspect(**options):
    """Show the precision of every compute layer of a TensorRT engine.

    FILE is an engine plan (needs TensorRT and a GPU) or a layer-information JSON: written by
    `trtexec --exportLayerInfo` (with --profilingVerbosity=detailed), by Polygraphy, or an
    rtdeploy engine manifest (X.engine.json). Compute layers are those with weights (convolutions,
    fully connected, fused conv+add), judged by weight type and input precision; Reformat and
    Quantize/Dequantize layers only move data.

    \b
    Examples:
      rtdeploy inspect resnet50.int8.engine --expect int8
      rtdeploy inspect model.graph.json --json -
    """
    from rtdeploy import api
    from rtdeploy.trt.layer_report import format_table

    def show(result):
        if options.get("json") != "-":
            click.echo(f"{result.path} ({result.source.replace('-', ' ')})")
            click.echo(format_table(result.report, result.verdict))

    failure = api.inspect(**options, show=show).failure()
    if failure:
        raise ValidationFailed(failure)
