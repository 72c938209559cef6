"""``rtdeploy export``: a ResNet to ONNX with a manifest."""

from __future__ import annotations

from rtdeploy.cli.common import say
from rtdeploy.cli.generate import command
from rtdeploy.export.options import ExportConfig


@command("export", ExportConfig)
def export(**options):
    """Export a registered model to ONNX (dynamic batch, BatchNorm folded, fully checked).

    Writes MODEL.onnx and MODEL.onnx.json (family, depth, preprocessing, opset, tool versions,
    sha256 of the ONNX and of the weights). Every later stage reads that manifest.

    \b
    Examples:
      rtdeploy export --model resnet50
      rtdeploy export --depth 56 --weights resnet56-4bfd9763.th -o r56.onnx
      rtdeploy export --depth 18 --num-classes 5 --batch 8
    """
    from rtdeploy import api

    def show(result):
        m = result.manifest
        say(f"wrote {result.path} ({m['bytes'] / 1e6:.1f} MB, opset {m['export']['opset']}, batch {m['export']['batch']}, "
            f"{sum(m['ops'].values())} nodes, {m['export']['seconds']:.1f}s)", options.get("json"))

    api.export(**options, show=show)
