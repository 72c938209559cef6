"""``rtdeploy import``: adopt an ONNX image classifier that rtdeploy did not write."""

from __future__ import annotations

from rtdeploy.cli.common import say
from rtdeploy.cli.generate import command
from rtdeploy.export.options import ImportConfig


@command("import", ImportConfig)
def import_(**options):
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

    def show(result):
        m, meta = result.manifest, result.meta
        imp = m["imported"]
        upgraded = f", opset {imp['opset_upgraded_from']} -> {imp['opset']}" if imp["opset_upgraded_from"] else f", opset {imp['opset']}"
        say(f"imported {result.path} as {meta.name}: input {meta.input_name} {imp['batch']}x{meta.in_channels}x"
            f"{meta.image_size}x{meta.image_size}, {meta.num_classes} classes{upgraded}; wrote {result.path.name}.json", options.get("json"))

    api.import_model(**options, show=show)
