"""``rtdeploy export``: a ResNet to ONNX with a manifest."""

from __future__ import annotations

from pathlib import Path

import click

from rtdeploy.cli.common import emit_json, handle_errors, json_option, model_option, progress_option, say


@click.command("export")
@model_option()
@click.option("--weights", type=click.Path(path_type=Path), help="Checkpoint (.pth/.pt/.th) to load with weights_only=True; default: seed-0 initialisation.")
@click.option("--num-classes", type=int, help="Output classes (default: 1000 ImageNet, 10 CIFAR).")
@click.option("--in-channels", type=int, default=3, show_default=True, help="Input channels.")
@click.option("--variant", type=click.Choice(["v1.5", "v1"]), help="ImageNet block variant: v1.5 (torchvision, default) or v1 (paper).")
@click.option("--image-size", type=int, help="Input height/width (default 224 ImageNet, 32 CIFAR).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset, 13..20 (TensorRT 8.6 reads up to 17).")
@click.option("--batch", default="dynamic", show_default=True, help="'dynamic' batch axis, or a fixed batch size.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="ONNX file to write [default: <model>.onnx].")
@progress_option()
@json_option("the manifest")
@handle_errors
def export(model, weights, num_classes, in_channels, variant, image_size, opset, batch, output, progress, json_out):
    """Export a ResNet to ONNX (dynamic batch, BatchNorm folded, fully checked).

    Writes MODEL.onnx and MODEL.onnx.json (family, depth, preprocessing, opset, tool versions,
    sha256 of the ONNX and of the weights). Every later stage reads that manifest.

    \b
    Examples:
      rtdeploy export --model resnet50
      rtdeploy export --depth 56 --weights resnet56-4bfd9763.th -o r56.onnx
      rtdeploy export --depth 18 --num-classes 5 --batch 8
    """
    from rtdeploy import api

    result = api.export(model=model, weights=weights, num_classes=num_classes, in_channels=in_channels, variant=variant,
                        image_size=image_size, opset=opset, batch=batch, output=output, progress=progress)
    m = result.manifest
    say(f"wrote {result.path} ({m['bytes'] / 1e6:.1f} MB, opset {opset}, batch {m['export']['batch']}, "
               f"{sum(m['ops'].values())} nodes, {m['export']['seconds']:.1f}s)", json_out)
    emit_json(m, json_out)
