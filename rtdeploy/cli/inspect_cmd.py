"""``rtdeploy inspect``: which precision each compute layer of an engine really runs in."""

from __future__ import annotations

from pathlib import Path

import click

from rtdeploy.cli.common import emit_json, handle_errors
from rtdeploy.errors import ValidationFailed


@click.command("inspect")
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
@click.option("--expect", type=click.Choice(["fp32", "fp16", "int8"]),
              help="Exit 3 when any compute layer runs above this precision (layers kept in float by the manifest excepted).")
@click.option("--json", "json_out", metavar="FILE", help="Also write the report as JSON to FILE ('-' for stdout, JSON alone).")
@handle_errors
def inspect(path, expect, json_out):
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
    from rtdeploy.artifacts import check_output_path
    from rtdeploy.trt.layer_report import format_table

    if json_out not in (None, "-"):
        check_output_path(Path(json_out))
    result = api.inspect(path, expect=expect)
    if json_out != "-":
        click.echo(f"{result.path} ({result.source.replace('-', ' ')})")
        click.echo(format_table(result.report, result.verdict))
    emit_json(result.to_dict(), json_out)
    failure = result.failure()
    if failure:
        raise ValidationFailed(failure)
