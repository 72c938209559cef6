"""Models by name: the model registry, ``--model NAME`` on every command, ``--depth N`` as its alias,
and an architecture registered with ``register_model`` (from outside the package: test_user_plugins.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtdeploy.cli.main import _register, cli
from rtdeploy.errors import ModelError
from rtdeploy.models import get_model, list_models, register_model
from rtdeploy.models import registry as specs


@pytest.fixture(scope="module")
def runner():
    _register()
    return CliRunner()


def test_registry_names_every_resnet_with_its_metadata():
    names = list_models()[:10]
    assert names == tuple(f"resnet{d}" for d in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110))
    for name in names:
        spec = get_model(name)
        meta = spec.meta()
        assert meta.name == name and meta.depth == spec.depth and meta.family == spec.family
        assert meta.gmacs and meta.num_classes in (10, 1000)
    assert get_model("50") is not None and get_model(56).name == "resnet56"
    assert get_model("ResNet50").name == "resnet50"


def test_unknown_names_and_depths_list_what_is_valid():
    with pytest.raises(ModelError, match="unknown model 'resnet19'; valid models: ImageNet resnet18, .*CIFAR-10 resnet20"):
        get_model("resnet19")
    with pytest.raises(ModelError, match="unknown depth 19; valid depths"):  # the depth alias keeps its own message
        get_model(19)


@pytest.mark.parametrize("flag,value", [("--model", "resnet20"), ("--depth", "20"), ("--model", "20")])
def test_export_takes_a_name_or_the_depth_alias(tmp_path, runner, flag, value, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(cli, ["export", flag, value], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    m = json.loads(Path("resnet20.onnx.json").read_text())  # the default file name is the model's name
    assert m["model"]["name"] == "resnet20" and m["model"]["depth"] == 20


def test_model_name_and_depth_export_the_same_artifact(tmp_path):
    from rtdeploy.make_or_reuse import exported
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
    from rtdeploy.pipeline.options import default_outdir

    assert default_outdir(RunConfig(model="resnet32").name) == Path("rtdeploy-out/resnet32")
    with pytest.raises(Exception, match="not both"):
        RunConfig(model="resnet32", onnx=tmp_path / "x.onnx").check()
    bad = runner.invoke(cli, ["build-engine", "--model", "resnet20", "--onnx", str(tmp_path / "x.onnx")])
    assert bad.exit_code == 2 and "not both" in bad.output
    assert BuildOptions(model="resnet20").model == "resnet20"


def test_build_engine_exports_the_named_model(tmp_path, monkeypatch):
    from rtdeploy.make_or_reuse import source_onnx
    from rtdeploy.trt import BuildOptions

    monkeypatch.chdir(tmp_path)
    onnx, precision = source_onnx(BuildOptions(model="resnet20"))
    assert onnx == Path("resnet20.onnx") and precision == "fp32"


def test_bench_model_takes_names_or_files(tmp_path):
    from rtdeploy.bench.options import BenchConfig
    from rtdeploy.errors import BenchmarkError

    cfg = BenchConfig(model="resnet20,resnet56", workdir=tmp_path)
    assert cfg.names == ("resnet20", "resnet56") and cfg.files == ()  # a sweep keyed by name
    assert BenchConfig(depth="20,56").names == ("resnet20", "resnet56")  # --depth is the ResNet alias
    (tmp_path / "m.onnx").write_bytes(b"x")
    cfg = BenchConfig(model=str(tmp_path / "m.onnx"), workdir=tmp_path)
    assert cfg.files == (tmp_path / "m.onnx",) and cfg.names == ()
    with pytest.raises(BenchmarkError, match="mixes model names"):
        BenchConfig(model=f"resnet20,{tmp_path / 'm.onnx'}", workdir=tmp_path)
    with pytest.raises(ModelError, match="unknown model"):
        BenchConfig(model="resnet19", workdir=tmp_path)


@pytest.fixture
def tinynet():
    """A four-layer CNN registered with register_model (removed again after the test)."""
    from torch import nn

    @register_model("tinynet", image_size=16, num_classes=10, preprocess="cifar", description="a four-layer CNN")
    def build(num_classes: int = 10, in_channels: int = 3):
        return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(8, num_classes))

    yield "tinynet"
    specs._registry.pop("tinynet", None)


def test_a_registered_architecture_goes_through_the_stages_by_name(tmp_path, tinynet):
    """A new architecture registered with register_model goes through export, validate against
    PyTorch, INT8 quantize and the summary, with no change to the package."""
    import numpy as np

    from rtdeploy import api

    assert tinynet in list_models()
    out = api.export(model=tinynet, output=tmp_path / "tinynet.onnx")
    assert out.meta.name == "tinynet" and out.manifest["derivation"]["config"]["model"] == "tinynet"
    assert api.validate(out.path, samples=4).passed  # the torch reference is rebuilt by name
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).random((8, 3, 16, 16), dtype=np.float32))
    q = api.quantize(out.path, int8=True, calib_dir=calib, stats_cache=False)
    assert q.report["quantized_layers"] == 2
    assert api.summary(model=tinynet).total_params == 3 * 8 * 9 + 8 + 8 * 10 + 10


def test_registering_a_taken_name_or_a_bad_one_is_refused(tinynet):
    with pytest.raises(ModelError, match="already registered"):
        register_model(tinynet)(lambda num_classes=10: None)
    with pytest.raises(ModelError, match="not accepted"):
        register_model("../escape")
    with pytest.raises(ModelError, match="preprocess 'yuv' is not known"):
        register_model("other", preprocess="yuv")
    with pytest.raises(ModelError, match="has no variants"):
        get_model(tinynet).meta(variant="v1")
