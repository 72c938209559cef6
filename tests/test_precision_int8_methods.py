"""`quantize --int8 --weights adaround --method consumer-mse` end to end: options, manifest, fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from rtdeploy import api
from rtdeploy.artifacts import read_manifest
from rtdeploy.cli.main import _register, cli
from rtdeploy.errors import PrecisionError


@pytest.fixture(autouse=True)
def _private_stats_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RTDEPLOY_CACHE_DIR", str(tmp_path_factory.mktemp("stats-cache")))


def _npy(folder: Path, n: int = 24, size: int = 32) -> Path:
    x = np.random.default_rng(0).normal(0, 1, (n, 3, size, size)).astype(np.float32)
    path = folder / "calib.npy"
    np.save(path, x)
    return path


def _int8_weights(path: Path) -> dict[str, np.ndarray]:
    m = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i) for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1}


@pytest.mark.slow
def test_manifest_records_weight_rounding_and_activation_method(exported, tmp_path):
    fp32 = exported(20)
    calib = _npy(tmp_path)
    plain = api.quantize(fp32.path, int8=True, calib_dir=calib, output=tmp_path / "plain.int8.onnx")
    assert read_manifest(plain.path)["quantization"]["weight_rounding"] == "nearest"
    r = api.quantize(fp32.path, int8=True, calib_dir=calib, method="consumer-mse", weights="adaround", output=tmp_path / "ada.int8.onnx")
    q = read_manifest(r.path)["quantization"]
    assert q["method"] == "consumer-mse" and q["weight_rounding"] == "adaround"
    assert q["adaround"]["layers"] == 20 and q["adaround"]["images"] == 24 and q["adaround"]["skipped"] == []
    assert q["adaround"]["mean_output_error_adaround"] < q["adaround"]["mean_output_error_nearest"]
    assert q["consumer_mse"]["images"] > 0 and r.report["weight_rounding"] == "adaround"
    assert q["qdq_nodes"] == read_manifest(plain.path)["quantization"]["qdq_nodes"]  # same Q/DQ layout
    near, ada = _int8_weights(plain.path), _int8_weights(r.path)
    assert set(near) == set(ada)
    diffs = [np.abs(ada[k].astype(int) - near[k].astype(int)) for k in near]
    assert max(d.max() for d in diffs) == 1 and sum(int(d.sum()) for d in diffs) == q["adaround"]["flipped_weights"]


def _small_reconstruction(monkeypatch):
    from rtdeploy.precision.int8 import weight_rounding
    from rtdeploy.precision.int8.reconstruct import ReconstructConfig

    monkeypatch.setattr(weight_rounding, "RECONSTRUCT", ReconstructConfig(images=16, iters=10, batch=4))


@pytest.mark.slow
def test_block_reconstruction_end_to_end(exported, tmp_path, monkeypatch):
    _small_reconstruction(monkeypatch)
    fp32, calib = exported(20, image_size=16), _npy(tmp_path, 16, size=16)
    plain = api.quantize(fp32.path, int8=True, calib_dir=calib, method="max", output=tmp_path / "plain.int8.onnx")
    r = api.quantize(fp32.path, int8=True, calib_dir=calib, method="max", weights="block", output=tmp_path / "block.int8.onnx")
    q = read_manifest(r.path)["quantization"]
    rec = q["reconstruction"]
    assert q["weight_rounding"] == "block" and r.report["weight_rounding"] == "block" and "adaround" not in q
    assert rec["images"] == 16 and rec["iters"] == 10 and rec["fallback"] is None
    assert len(rec["blocks"]) == 11  # the stem, nine residual blocks, the classifier
    assert all(b["loss"] <= b["loss_start"] for b in rec["blocks"])
    assert q["qdq_nodes"] == read_manifest(plain.path)["quantization"]["qdq_nodes"]
    assert q["scales"] == read_manifest(plain.path)["quantization"]["scales"]  # scales are not learned by default
    near, blk = _int8_weights(plain.path), _int8_weights(r.path)
    assert set(near) == set(blk) and max(np.abs(blk[k].astype(int) - near[k].astype(int)).max() for k in near) <= 1


def test_block_reconstruction_falls_back_to_adaround_on_an_op_it_cannot_run(tmp_path, monkeypatch):
    from test_precision_torch_graph import _residual_net
    from tiny_graphs import write_fp32_artifact

    _small_reconstruction(monkeypatch)
    model = _residual_net()
    next(n for n in model.graph.node if n.name == "relu1").op_type = "Softplus"
    path = write_fp32_artifact(model, tmp_path / "soft.onnx")
    calib = tmp_path / "c.npy"
    np.save(calib, np.random.default_rng(0).normal(0, 1, (12, 3, 8, 8)).astype(np.float32))
    r = api.quantize(path, int8=True, calib_dir=calib, method="max", weights="block", output=tmp_path / "soft.int8.onnx")
    q = read_manifest(r.path)["quantization"]
    assert q["reconstruction"]["fallback"].startswith("adaround: op Softplus") and q["reconstruction"]["blocks"] == []
    assert q["adaround"]["layers"] == 4


@pytest.mark.parametrize("depth, images, trt_cache, chosen, fallback", [
    (20, 1000, False, "block", {}),
    (56, 1000, False, "block", {}),  # the model the budget was measured on
    (110, 1000, False, "adaround", {}),  # block would cost twice ResNet-56's
    (56, 127, False, "nearest", {}),  # too few images to fit a rounding to
    (56, 1000, True, "nearest", {}),  # scales from a TensorRT cache: no images
    # layers returned to float would leave block reconstruction's compensation wrong
    (20, 1000, False, "adaround", {"keep_fp": 6}),
    (56, 1000, False, "adaround", {"target_agreement": 0.99}),
])
def test_auto_weights_is_the_best_rounding_that_fits_the_budget(depth, images, trt_cache, chosen, fallback, exported):
    import onnx

    from rtdeploy.precision.int8.qdq import plan_qdq
    from rtdeploy.precision.int8.weight_rounding import auto_weights, weighted_gmacs
    from rtdeploy.precision.quantize import QuantizeConfig

    model = onnx.load(str(exported(depth).path))
    plan = plan_qdq(model)
    cfg = QuantizeConfig(model=Path("m.onnx"), int8=True, from_trt_cache=Path("c.cache") if trt_cache else None, **fallback)
    got, why = auto_weights(model, plan, images, cfg)
    assert got == chosen and why
    assert auto_weights(model, plan, images, QuantizeConfig(model=Path("m.onnx"), int8=True, weights="nearest")) == ("nearest", "asked for")
    published = {20: 0.041, 56: 0.125, 110: 0.253}[depth]  # He et al.'s CIFAR ResNets, conv and linear MACs
    assert weighted_gmacs(model, plan) == pytest.approx(published, rel=0.03)


@pytest.mark.slow
def test_fallback_ranks_the_adaptively_rounded_model(exported, tmp_path):
    r = api.quantize(exported(20).path, int8=True, calib_dir=_npy(tmp_path, 30), weights="adaround", keep_fp=2,
                     output=tmp_path / "k.int8.onnx")
    q = read_manifest(r.path)["quantization"]
    assert len(q["kept_fp"]) == 2 and q["quantized_layers"] == 27 and q["weight_rounding"] == "adaround"
    assert read_manifest(r.path)["calibration"]["held_out"] > 0


@pytest.mark.parametrize("kwargs, needle", [
    # The library names options by their field (the CLI shows the flag: see test_errors_name_fields_and_the_cli_flags).
    ({"int8": True, "weights": "stochastic"}, "unknown weight rounding weights 'stochastic'; accepted: auto, nearest, adaround, block"),
    ({"fp16": True, "weights": "block"}, "weights block applies to int8 only"),
    ({"int8": True, "target": "onnxruntime-cpu", "weights": "block"}, "weights block applies to target tensorrt only"),
    ({"fp16": True, "weights": "adaround"}, "weights adaround applies to int8 only"),
])
def test_bad_weight_options_are_refused_before_any_work(kwargs, needle, exported, tmp_path):
    with pytest.raises(PrecisionError) as e:
        api.quantize(exported(20).path, calib_dir=tmp_path / "missing", output=tmp_path / "x.onnx", **kwargs)
    assert needle in str(e.value)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_cli_takes_weights_and_consumer_mse(exported, tmp_path):
    _register()
    out = tmp_path / "c.int8.onnx"
    result = CliRunner().invoke(cli, ["quantize", str(exported(20).path), "--int8", "--calib-dir", str(_npy(tmp_path, 12)),
                                      "--weights", "adaround", "--method", "consumer-mse", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "consumer-mse on 12 images, adaround weights" in result.output
    result = CliRunner().invoke(cli, ["quantize", str(exported(20).path), "--fp16", "--weights", "adaround", "-o", str(tmp_path / "f.onnx")])
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--int8 only" in lines[0]
    assert not (tmp_path / "f.onnx").exists()
