"""Hand-offs a receiving runtime accepts (issue 18): every artifact has its own name, no command
replaces an artifact of another kind, and build-engine refuses, before any work and with or
without TensorRT, what TensorRT's ONNX parser does not build (onnx-tensorrt's importer rules;
the rules themselves: rtdeploy/precision/trt_buildable.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto

from manifest_fakes import write_derived_manifest, write_onnx_manifest
from rtdeploy import api
from rtdeploy.artifacts import read_manifest
from rtdeploy.files import manifest_path, sha256_file
from rtdeploy.cli.main import _register, cli
from rtdeploy.errors import EngineError
from rtdeploy.models import model_meta
from tiny_graphs import foreign_multi_output, qdq_classifier, tiny_convnet


@pytest.fixture(autouse=True)
def _no_tensorrt_here(monkeypatch, tmp_path_factory):
    """These cases judge files as a machine without TensorRT does (the installed release, where one
    is, is the one judged: a test of its own below); statistics go to a private cache."""
    monkeypatch.setattr("rtdeploy.trt.loader.installed_version", lambda: None, raising=False)
    monkeypatch.setenv("RTDEPLOY_CACHE_DIR", str(tmp_path_factory.mktemp("stats")))


@pytest.fixture(scope="module")
def runner():
    _register()
    return CliRunner()


def _fp32(folder: Path, model=None, name: str = "m.onnx") -> Path:
    path = folder / name
    onnx.save(model or tiny_convnet(), str(path))
    write_onnx_manifest(path, model_meta(20, image_size=8).to_dict())
    return path


def _calib(folder: Path) -> Path:
    path = folder / "calib.npy"
    np.save(path, np.random.default_rng(0).normal(0, 1, (8, 3, 8, 8)).astype(np.float32))
    return path


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -- 1. one naming rule, and no artifact of another kind replaced -----------------------------------
def test_cpu_target_without_o_writes_int8_cpu_and_leaves_the_tensorrt_form(tmp_path, runner):
    """Why: `quantize X.onnx --int8 --target onnxruntime-cpu` wrote X.int8.onnx over the TensorRT-placed model."""
    fp32, calib = _fp32(tmp_path), _calib(tmp_path)
    trt_form = api.quantize(fp32, int8=True, calib_dir=calib, method="max").path
    assert trt_form.name == "m.int8.onnx"
    kept = (sha256_file(trt_form), manifest_path(trt_form).read_text())
    result = runner.invoke(cli, ["quantize", str(fp32), "--int8", "--target", "onnxruntime-cpu", "--calib-dir", str(calib),
                                 "--method", "max"])
    assert result.exit_code == 0, result.output
    assert (sha256_file(trt_form), manifest_path(trt_form).read_text()) == kept, "the TensorRT-placed INT8 model was replaced"
    assert read_manifest(tmp_path / "m.int8-cpu.onnx")["quantization"]["target"] == "onnxruntime-cpu"


def test_package_kind_cpu_finds_the_form_quantize_named(tmp_path):
    """One naming rule serves quantize and package: --kind cpu swaps in X.int8-cpu.onnx as made by default."""
    fp32, calib = _fp32(tmp_path), _calib(tmp_path)
    trt_form = api.quantize(fp32, int8=True, calib_dir=calib, method="max").path
    api.quantize(fp32, int8=True, calib_dir=calib, method="max", target="onnxruntime-cpu")
    dest = api.package(trt_form, triton=tmp_path / "repo", kind="cpu", name="m")
    assert (dest / "1" / "model.onnx").read_bytes() == (tmp_path / "m.int8-cpu.onnx").read_bytes()


@pytest.mark.parametrize("target,existing_target", [("onnxruntime-cpu", "tensorrt"), ("tensorrt", "onnxruntime-cpu")])
def test_quantize_o_onto_the_other_int8_form_is_refused_before_work(tmp_path, runner, target, existing_target):
    fp32 = _fp32(tmp_path)
    other = tmp_path / "other.onnx"
    onnx.save(tiny_convnet(), str(other))
    write_derived_manifest(other, fp32, "int8")
    m = json.loads(manifest_path(other).read_text())
    m["quantization"]["target"] = existing_target
    manifest_path(other).write_text(json.dumps(m))
    before = _files(tmp_path)
    result = runner.invoke(cli, ["quantize", str(fp32), "--int8", "--target", target, "--calib-dir", str(tmp_path / "absent"),
                                 "-o", str(other)])
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "would replace" in line and ("placed for TensorRT" if existing_target == "tensorrt" else "CPU kernels") in line
    assert _files(tmp_path) == before  # refused before the (missing) calibration data was even opened


def test_fp16_and_export_do_not_replace_an_int8_model(tmp_path, runner):
    fp32 = _fp32(tmp_path)
    int8 = tmp_path / "m.int8.onnx"
    onnx.save(tiny_convnet(), str(int8))
    write_derived_manifest(int8, fp32, "int8")
    before = _files(tmp_path)
    fp16 = runner.invoke(cli, ["quantize", str(fp32), "--fp16", "-o", str(int8)])
    export = runner.invoke(cli, ["export", "--depth", "20", "-o", str(int8)])
    for result in (fp16, export):
        assert result.exit_code == 1
        assert "would replace an INT8 model placed for TensorRT" in _one_error_line(result)
    assert _files(tmp_path) == before


def test_same_kind_is_still_replaced(tmp_path):
    """Re-running a stage onto its own output stays allowed (the reuse rule decides when to)."""
    fp32, calib = _fp32(tmp_path), _calib(tmp_path)
    first = api.quantize(fp32, int8=True, calib_dir=calib, method="max")
    second = api.quantize(fp32, int8=True, calib_dir=calib, method="entropy")
    assert first.path == second.path and read_manifest(second.path)["quantization"]["method"] == "entropy"


# -- 2. build-engine takes only what TensorRT builds ------------------------------------------------
def _qdq(folder: Path, name: str, **kw) -> Path:
    path = folder / name
    onnx.save(qdq_classifier(**kw), str(path))
    return path


def test_build_engine_refuses_the_cpu_form_without_tensorrt(tmp_path, runner):
    """Why: on a CPU machine `build-engine --onnx X.int8.onnx --int8` (then the CPU form) said "ready"."""
    fp32 = _fp32(tmp_path)
    cpu = api.quantize(fp32, int8=True, calib_dir=_calib(tmp_path), method="max", target="onnxruntime-cpu").path
    before = _files(tmp_path)
    result = runner.invoke(cli, ["build-engine", "--onnx", str(cpu), "--int8"])
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "onnxruntime's CPU kernels" in line and "m.int8.onnx" in line and "ready" not in line
    assert _files(tmp_path) == before


@pytest.mark.parametrize("kw,needle", [
    (dict(zero_point=128, zero_type=TensorProto.UINT8), "UINT8"),
    (dict(zero_point=0, zero_type=TensorProto.UINT8), "UINT8"),
    (dict(zero_point=3), "non-zero zero point"),
    (dict(with_zero_point=False), "no zero point, so ONNX makes it UINT8"),
], ids=["uint8-asymmetric", "uint8-zero", "int8-asymmetric", "default-uint8"])
def test_build_engine_refuses_q_dq_tensorrt_does_not_take(tmp_path, runner, kw, needle):
    """onnx-tensorrt QuantDequantLinearHelper (8.6-GA builtin_op_importers.cpp, 10.x onnxOpImporters.cpp):
    zero points must be all zeros, no UINT8 Q/DQ; a Q without zero point is UINT8 by ONNX's default."""
    model = _qdq(tmp_path, "foreign.onnx", **kw)
    before = _files(tmp_path)
    result = runner.invoke(cli, ["build-engine", "--onnx", str(model), "--int8"])
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert needle in line and "rtdeploy quantize" in line
    assert _files(tmp_path) == before


def test_build_engine_judges_the_named_release(tmp_path, runner):
    """Why: `--high-precision fp16` (opset 19, float16 scales) passed for an 8.6 build; onnx-tensorrt 8.6 documents
    opsets up to 17 and reads constant scales as float32."""
    half = _qdq(tmp_path, "half.onnx", opset=19, scale_type=TensorProto.FLOAT16)
    before = _files(tmp_path)
    old = runner.invoke(cli, ["build-engine", "--onnx", str(half), "--int8", "--trt-version", "8.6"])
    assert old.exit_code == 1
    line = _one_error_line(old)
    assert "opset 19" in line and "up to 17" in line and "TensorRT 10.0 or later" in line
    assert _files(tmp_path) == before
    new = runner.invoke(cli, ["build-engine", "--onnx", str(half), "--int8", "--trt-version", "10.3"])
    assert new.exit_code == 4, new.output  # judged buildable: only TensorRT itself is missing
    assert "build it where TensorRT 10.0 or later and a GPU are" in new.stderr


def test_bad_trt_version_is_refused_before_any_work(tmp_path, runner):
    result = runner.invoke(cli, ["build-engine", "--onnx", str(tmp_path / "absent.onnx"), "--trt-version", "eight"])
    assert result.exit_code == 1 and "is not a TensorRT version" in _one_error_line(result)


def test_installed_release_is_judged_and_a_different_name_refused(tmp_path, monkeypatch):
    half = _qdq(tmp_path, "half.onnx", opset=19, scale_type=TensorProto.FLOAT16)
    monkeypatch.setattr("rtdeploy.trt.loader.installed_version", lambda: "8.6.1")
    with pytest.raises(EngineError, match="documents opsets up to 17"):
        api.build_engine(half, precision="int8")
    with pytest.raises(EngineError, match="names TensorRT 10.3, but TensorRT 8.6.1 is installed"):
        api.build_engine(half, precision="int8", trt_version="10.3")


def test_symmetric_int8_from_quantize_passes_every_release(tmp_path):
    from rtdeploy.precision.trt_buildable import DOCUMENTED_OPSETS, Release, check_buildable, qdq_problems

    fp32 = _fp32(tmp_path)
    int8 = api.quantize(fp32, int8=True, calib_dir=_calib(tmp_path), method="max").path
    for row in DOCUMENTED_OPSETS:
        check_buildable(int8, row.first, manifest=read_manifest(int8))
    assert qdq_problems(onnx.load(str(int8)), Release(8, 6)) == []


# -- the import note ---------------------------------------------------------------------------------
def test_import_of_opset_above_17_says_what_tensorrt_8_6_will_do(tmp_path, caplog):
    """Why: `rtdeploy import` took opsets above 17 without a note that TensorRT 8.6 (JetPack 6.0) documents up to 17."""
    path = tmp_path / "foreign19.onnx"
    onnx.save(foreign_multi_output(opset=19), str(path))
    with caplog.at_level(logging.WARNING, logger="rtdeploy"):
        api.import_model(path, preprocess="none")
    notes = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("opset 19" in n and "TensorRT 8.6" in n and "up to 17" in n and "TensorRT 10.0 or later" in n for n in notes), notes
