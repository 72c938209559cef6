"""``rtdeploy summary``: per-layer output shapes, parameters and MACs of a ResNet."""

from __future__ import annotations

import click

from rtdeploy.cli.generate import command
from rtdeploy.models.summary import SummaryConfig
from rtdeploy.tables import format_table


@command("summary", SummaryConfig)
def summary(**options):
    """Per-layer table of a registered model: output shape, parameters and MACs, with totals.

    MACs count convolutions and linear layers (the published GMACs convention), per image.

    \b
    Examples:
      rtdeploy summary --depth 50
      rtdeploy summary --depth 56 --blocks-only
      rtdeploy summary --depth 18 --image-size 64 --json -
    """
    from rtdeploy import api

    def show(s):
        if options.get("json") == "-":
            return
        rows = [
            {"layer": r.name, "type": r.type, "output shape": "x".join(map(str, r.output_shape)), "params": r.params, "MACs": r.macs}
            for r in s.rows
        ]
        click.echo(format_table(rows))
        registry = f" (published {s.meta.gmacs:g})" if s.meta.gmacs else ""
        click.echo(
            f"\n{s.meta.name} ({s.meta.family}, {s.meta.variant or 'no variant'}): input {'x'.join(map(str, s.input_shape))} -> "
            f"output {'x'.join(map(str, s.output_shape))}\n"
            f"params: {s.total_params:,} ({s.total_params * 4 / 1e6:.1f} MB as fp32), trainable {s.trainable_params:,}\n"
            f"MACs per image: {s.total_macs:,} = {s.gmacs:.3f} G{registry}"
        )

    api.summary(**options, show=show)
