"""``rtdeploy summary``: per-layer output shapes, parameters and MACs of a ResNet."""

from __future__ import annotations

import click

from rtdeploy.cli.common import emit_json, format_table, handle_errors, json_option, model_option


@click.command("summary")
@model_option()
@click.option("--image-size", type=int, help="Input height/width (default 224 ImageNet, 32 CIFAR).")
@click.option("--num-classes", type=int, help="Output classes (default: 1000 ImageNet, 10 CIFAR).")
@click.option("--in-channels", type=int, default=3, show_default=True, help="Input channels.")
@click.option("--variant", type=click.Choice(["v1.5", "v1"]), help="ImageNet block variant: v1.5 (default) or v1.")
@click.option("--blocks-only", is_flag=True, help="List residual blocks and top-level layers only.")
@json_option("the summary")
@handle_errors
def summary(model, image_size, num_classes, in_channels, variant, blocks_only, json_out):
    """Per-layer table of a ResNet: output shape, parameters and MACs, with totals.

    MACs count convolutions and linear layers (the published GMACs convention), per image.

    \b
    Examples:
      rtdeploy summary --depth 50
      rtdeploy summary --depth 56 --blocks-only
      rtdeploy summary --depth 18 --image-size 64 --json -
    """
    from rtdeploy import api

    s = api.summary(model=model, image_size=image_size, num_classes=num_classes, in_channels=in_channels, variant=variant)
    if json_out == "-":
        emit_json(s.to_dict(), json_out)
        return
    rows = [
        {"layer": r.name, "type": r.type, "output shape": "x".join(map(str, r.output_shape)), "params": r.params, "MACs": r.macs}
        for r in s.rows if not blocks_only or r.kind == "block" or "." not in r.name
    ]
    click.echo(format_table(rows))
    registry = f" (published {s.meta.gmacs:g})" if s.meta.gmacs else ""
    click.echo(
        f"\n{s.meta.name} ({s.meta.family}, {s.meta.variant}): input {'x'.join(map(str, s.input_shape))} -> "
        f"output {'x'.join(map(str, s.output_shape))}\n"
        f"params: {s.total_params:,} ({s.total_params * 4 / 1e6:.1f} MB as fp32), trainable {s.trainable_params:,}\n"
        f"MACs per image: {s.total_macs:,} = {s.gmacs:.3f} G{registry}"
    )
    emit_json(s.to_dict(), json_out)
