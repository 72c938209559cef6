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


def _npy(folder: Path, n: int = 24) -> Path:
    x = np.random.default_rng(0).normal(0, 1, (n, 3, 32, 32)).astype(np.float32)
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


@pytest.mark.slow
def test_fallback_ranks_the_adaptively_rounded_model(exported, tmp_path):
    r = api.quantize(exported(20).path, int8=True, calib_dir=_npy(tmp_path, 30), weights="adaround", keep_fp=2,
                     output=tmp_path / "k.int8.onnx")
    q = read_manifest(r.path)["quantization"]
    assert len(q["kept_fp"]) == 2 and q["quantized_layers"] == 27 and q["weight_rounding"] == "adaround"
    assert read_manifest(r.path)["calibration"]["held_out"] > 0


@pytest.mark.parametrize("kwargs, needle", [
    # The library names options by their field (the CLI shows the flag: see test_errors_name_fields_and_the_cli_flags).
    ({"int8": True, "weights": "stochastic"}, "unknown weight rounding weights 'stochastic'; accepted: nearest, adaround"),
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
