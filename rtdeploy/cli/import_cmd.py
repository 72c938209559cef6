"""``rtdeploy import``: adopt an ONNX image classifier that rtdeploy did not write."""

from __future__ import annotations

from pathlib import Path

import click

from rtdeploy.cli.common import emit_json, handle_errors


@click.command("import")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--preprocess", type=click.Choice(["imagenet", "cifar", "none"]), help="How images become inputs: imagenet (resize, center crop, ImageNet mean/std), cifar (resize, ImageNet mean/std), none (pixels in [0, 1]).")
@click.option("--size", type=int, help="Input height = width [default: the model's].")
@click.option("--mean", metavar="R,G,B", help="Per-channel mean of pixels in [0, 1] (overrides --preprocess).")
@click.option("--std", metavar="R,G,B", help="Per-channel std (overrides --preprocess).")
@click.option("--layout", type=click.Choice(["NCHW"]), default="NCHW", show_default=True, help="Input layout.")
@click.option("--classes", type=int, help="Output classes the model must have [default: its output size].")
@click.option("--name", help="Model name in reports and derived files [default: the file's stem].")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Where the adopted ONNX lies [default: in place; <stem>.imported.onnx when it must be rewritten].")
@click.option("--json", "json_out", metavar="FILE", help="Also write the manifest as JSON to FILE ('-' for stdout).")
@handle_errors
def import_(model, preprocess, size, mean, std, layout, classes, name, output, json_out):
    """Adopt an ONNX image classifier made elsewhere, so every stage takes it.

    Checks it (onnx.checker, one float32 NCHW input, opset >= 13 or upgradable to 13, external
    data present, output size vs --classes) and writes MODEL.onnx.json: input size, batch (fixed
    or dynamic), preprocessing, classes, tensor names. Then validate (against onnxruntime on the
    file itself, or on --images with labels), quantize --fp16/--int8, build-engine --onnx,
    bench --model, package and run --onnx take it like an export.

    \b
    Examples:
      rtdeploy import mynet.onnx --preprocess imagenet
      rtdeploy import cifar_net.onnx --preprocess cifar --classes 10
      rtdeploy import old.onnx --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 -o old.v13.onnx
    """
    from rtdeploy import api

    result = api.import_model(model, output=output, name=name, preprocess=preprocess, size=size, mean=mean, std=std,
                              layout=layout, classes=classes)
    m, meta = result.manifest, result.meta
    imp = m["imported"]
    upgraded = f", opset {imp['opset_upgraded_from']} -> {imp['opset']}" if imp["opset_upgraded_from"] else f", opset {imp['opset']}"
    click.echo(f"imported {result.path} as {meta.name}: input {meta.input_name} {imp['batch']}x{meta.in_channels}x"
               f"{meta.image_size}x{meta.image_size}, {meta.num_classes} classes{upgraded}; wrote {result.path.name}.json")
    emit_json(m, json_out)
