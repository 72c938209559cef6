"""rtdeploy summary: per-layer shapes, parameters and MACs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rtdeploy.models import model_meta
from rtdeploy.models.resnet import GMACS
from rtdeploy.models.summary import summarize

PARAMS = {18: 11_689_512, 50: 25_557_032, 56: 853_018}


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152, 20, 32, 44, 56, 110])
def test_mac_total_agrees_with_the_published_table(depth):
    s = summarize(model_meta(depth))
    assert s.gmacs == pytest.approx(GMACS[depth], rel=0.02)


def test_resnet18_macs_by_hand():
    s = summarize(model_meta(18))
    rows = {r.name: r for r in s.rows}
    assert rows["conv1"].macs == 112 * 112 * 64 * 3 * 7 * 7
    assert rows["conv1"].output_shape == (1, 64, 112, 112)
    assert rows["layer2.0.downsample.0"].macs == 28 * 28 * 128 * 64
    assert rows["fc"].macs == 512 * 1000 and rows["fc"].params == 512 * 1000 + 1000
    assert rows["maxpool"].macs == 0 and rows["maxpool"].output_shape == (1, 64, 56, 56)
    assert s.total_params == PARAMS[18]
    assert s.output_shape == (1, 1000)


def test_blocks_total_their_layers():
    s = summarize(model_meta(50, image_size=64))
    rows = {r.name: r for r in s.rows}
    block = rows["layer3.0"]
    assert block.kind == "block" and block.type == "Bottleneck"
    inside = [r for r in s.rows if r.name.startswith("layer3.0.") and r.kind == "layer"]
    assert block.params == sum(r.params for r in inside)
    assert block.macs == sum(r.macs for r in inside)
    assert block.output_shape == (1, 1024, 4, 4)
    assert sum(r.params for r in s.rows if r.kind == "layer") == s.total_params == PARAMS[50]
    assert names_in_forward_order(s)


def names_in_forward_order(s) -> bool:
    names = [r.name for r in s.rows]
    return names.index("conv1") < names.index("layer1.0") < names.index("layer1.0.conv1") < names.index("fc")


def _cli():
    from rtdeploy.cli.main import _register, cli

    _register()
    return cli


def test_cli_table_and_json(tmp_path):
    result = CliRunner().invoke(_cli(), ["summary", "--depth", "56", "--blocks-only"])
    assert result.exit_code == 0, result.output
    assert "layer3.8" in result.output and "853,018" in result.output
    assert "layer3.8.conv1" not in result.output
    out = tmp_path / "s.json"
    result = CliRunner().invoke(_cli(), ["summary", "--depth", "56", "--json", str(out)])
    assert result.exit_code == 0
    d = json.loads(out.read_text())
    assert d["total_params"] == PARAMS[56] and d["gmacs"] == pytest.approx(GMACS[56], rel=0.02)
    assert d["layers"][0]["name"] == "conv1"


def test_cli_unknown_depth():
    result = CliRunner().invoke(_cli(), ["summary", "--depth", "19"])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: unknown depth 19") and len(result.stderr.strip().splitlines()) == 1
