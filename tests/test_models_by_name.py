"""Models by name: the spec registry, ``--model NAME`` on every command, ``--depth N`` as its alias,
and an architecture added by one module plus one registry entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtdeploy.cli.main import _register, cli
from rtdeploy.errors import ModelError
from rtdeploy.models import specs


@pytest.fixture(scope="module")
def runner():
    _register()
    return CliRunner()


def test_registry_names_every_resnet_with_its_metadata():
    names = specs.model_names()
    assert names == tuple(f"resnet{d}" for d in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110))
    for name in names:
        spec = specs.get_spec(name)
        meta = spec.meta()
        assert meta.name == name and meta.depth == spec.depth and meta.family == spec.family
        assert meta.gmacs and meta.num_classes in (10, 1000)
    assert specs.get_spec("50") is not None and specs.get_spec(56).name == "resnet56"
    assert specs.get_spec("ResNet50").name == "resnet50"


def test_unknown_names_and_depths_list_what_is_valid():
    with pytest.raises(ModelError, match="unknown model 'resnet19'; valid models: ImageNet resnet18, .*CIFAR-10 resnet20"):
        specs.get_spec("resnet19")
    with pytest.raises(ModelError, match="unknown depth 19; valid depths"):  # the depth alias keeps its own message
        specs.get_spec(19)


@pytest.mark.parametrize("flag,value", [("--model", "resnet20"), ("--depth", "20"), ("--model", "20")])
def test_export_takes_a_name_or_the_depth_alias(tmp_path, runner, flag, value, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(cli, ["export", flag, value], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    m = json.loads(Path("resnet20.onnx.json").read_text())  # the default file name is the model's name
    assert m["model"]["name"] == "resnet20" and m["model"]["depth"] == 20


def test_model_name_and_depth_export_the_same_artifact(tmp_path):
    from rtdeploy.derive import exported
    from rtdeploy.export import ExportConfig

    first = exported(ExportConfig(depth=20, output=tmp_path / "a.onnx"))
    again = exported(ExportConfig(model="resnet20", output=tmp_path / "a.onnx"))
    assert first.made and not again.made  # same derivation record: the name is the depth's model


def test_unknown_model_on_the_command_line_is_one_line(tmp_path, runner):
    res = runner.invoke(cli, ["export", "--model", "resnet19", "-o", str(tmp_path / "x.onnx")])
    assert res.exit_code == 1 and res.stderr.count("\n") == 1 and "valid models" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_summary_and_run_and_build_engine_take_names(tmp_path, runner):
    from rtdeploy.pipeline import RunConfig
    from rtdeploy.trt import BuildOptions

    res = runner.invoke(cli, ["summary", "--model", "resnet56", "--blocks-only"], catch_exceptions=False)
    assert res.exit_code == 0 and "resnet56 (cifar" in res.output
    assert RunConfig(model="resnet32").name == "resnet32" and RunConfig(depth=44).name == "resnet44"
    from rtdeploy.pipeline.run import default_outdir

    assert default_outdir(RunConfig(model="resnet32").name) == Path("rtdeploy-out/resnet32")
    with pytest.raises(Exception, match="not both"):
        RunConfig(model="resnet32", onnx=tmp_path / "x.onnx").check()
    bad = runner.invoke(cli, ["build-engine", "--model", "resnet20", "--onnx", str(tmp_path / "x.onnx")])
    assert bad.exit_code == 2 and "not both" in bad.output
    assert BuildOptions(model="resnet20").model == "resnet20"


def test_build_engine_exports_the_named_model(tmp_path, monkeypatch):
    from rtdeploy.derive import source_onnx
    from rtdeploy.trt import BuildOptions

    monkeypatch.chdir(tmp_path)
    onnx, precision = source_onnx(BuildOptions(model="resnet20"))
    assert onnx == Path("resnet20.onnx") and precision == "fp32"


def test_bench_model_takes_names_or_files(tmp_path):
    from rtdeploy.bench.options import make_config
    from rtdeploy.errors import BenchmarkError

    cfg = make_config(model="resnet20,resnet56", workdir=tmp_path)
    assert cfg.depths == (20, 56) and cfg.models == ()
    (tmp_path / "m.onnx").write_bytes(b"x")
    cfg = make_config(model=str(tmp_path / "m.onnx"), workdir=tmp_path)
    assert cfg.models == (tmp_path / "m.onnx",) and cfg.depths == ()
    with pytest.raises(BenchmarkError, match="mixes model names"):
        make_config(model=f"resnet20,{tmp_path / 'm.onnx'}", workdir=tmp_path)
    with pytest.raises(ModelError, match="unknown model"):
        make_config(model="resnet19", workdir=tmp_path)


def test_an_added_architecture_is_one_module_and_one_registry_entry(tmp_path, monkeypatch):
    """A new architecture (a plain CNN here, standing in for its module) registered by one spec
    entry goes through export, validate against PyTorch, and INT8 quantize, with no other change."""
    import numpy as np
    import torch
    from torch import nn

    from rtdeploy import api
    from rtdeploy.models.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMeta

    def meta(num_classes=None, in_channels=3, variant=None, image_size=None):
        return ModelMeta(family="cifar", depth=None, name="tinynet", num_classes=num_classes or 10, in_channels=in_channels,
                         image_size=image_size or 16, resize=None, mean=IMAGENET_MEAN, std=IMAGENET_STD, variant="")

    def build(m):
        return nn.Sequential(nn.Conv2d(m.in_channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(8, m.num_classes)).eval()

    original = specs._specs
    entry = specs.ModelSpec("tinynet", "cifar", "a four-layer CNN", meta, build)
    monkeypatch.setattr(specs, "_specs", lambda: original() | {"tinynet": entry})
    torch.manual_seed(0)
    out = api.export(model="tinynet", output=tmp_path / "tinynet.onnx")
    assert out.meta.name == "tinynet" and out.manifest["derivation"]["config"]["model"] == "tinynet"
    assert api.validate(out.path, samples=4).passed  # the torch reference is rebuilt through the spec
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).random((8, 3, 16, 16), dtype=np.float32))
    q = api.quantize(out.path, int8=True, calib_dir=calib, stats_cache=False)
    assert q.report["quantized_layers"] == 2
