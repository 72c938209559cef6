"""Artifacts you can trust: every reuse scenario that once went wrong, through the real stages.

Each test here failed on the code before rtdeploy/derive.py (where reuse looked at a folder's
path, or at any file of the right name, instead of what the artifact was made from).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rtdeploy import api
from rtdeploy.artifacts import read_manifest
from rtdeploy.files import folder_lock, sha256_file
from rtdeploy.lineage import derived_path
from rtdeploy.make_or_reuse import engine, quantized
from rtdeploy.errors import OutputError
from rtdeploy.precision.quantize import QuantizeConfig


def _images(folder: Path, seed: int, n: int = 6) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture
def fp32(tmp_path, exported):
    src = exported(20).path
    dst = tmp_path / "resnet20.onnx"
    dst.write_bytes(src.read_bytes())
    (tmp_path / "resnet20.onnx.json").write_text(Path(str(src) + ".json").read_text())
    return dst


def _int8(fp32: Path, calib: Path, **kw):
    return quantized(QuantizeConfig(model=fp32, int8=True, calib_dir=calib, method=kw.pop("method", "max"),
                                    stats_cache=False, **kw))


def test_replaced_calibration_images_remake_the_int8_model(fp32, tmp_path):
    calib = _images(tmp_path / "calib", seed=1)
    first = _int8(fp32, calib)
    assert first.made
    again = _int8(fp32, calib)
    assert not again.made and "calibration" in again.why
    _images(calib, seed=2)  # same file names, new contents
    third = _int8(fp32, calib)
    assert third.made and third.why == "its calibration changed"
    assert read_manifest(third.path)["derivation"]["inputs"]["calibration"] != \
        read_manifest(fp32)["sha256"]  # a content fingerprint, not the folder path


def test_another_calibrator_or_keep_fp_is_not_served_an_old_int8_model(fp32, tmp_path):
    calib = _images(tmp_path / "calib", seed=1)
    _int8(fp32, calib)
    other = _int8(fp32, calib, method="percentile")
    assert other.made and "method 'max' -> 'percentile'" in other.why
    assert read_manifest(other.path)["quantization"]["method"] == "percentile"


@pytest.mark.slow
def test_build_engine_int8_remakes_the_qdq_model_when_its_data_changed(fp32, tmp_path):
    calib = _images(tmp_path / "calib", seed=1)
    from rtdeploy.make_or_reuse import source_onnx
    from rtdeploy.trt import BuildOptions

    opts = BuildOptions(onnx=fp32, precision="int8", calib_dir=calib)
    onnx, precision = source_onnx(opts)
    assert precision == "int8" and onnx == derived_path(fp32, "int8")
    before = sha256_file(onnx)
    assert source_onnx(opts)[0] == onnx and sha256_file(onnx) == before  # reused, same data
    _images(calib, seed=3)
    source_onnx(opts)
    assert sha256_file(onnx) != before, "new calibration contents must give a new INT8 model"


def test_quantize_refuses_to_overwrite_its_own_parent(fp32):
    from rtdeploy.cli.main import _register, cli

    _register()
    before = sha256_file(fp32)
    res = CliRunner().invoke(cli, ["quantize", str(fp32), "--int8", "-o", str(fp32)])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "would overwrite the input itself" in lines[0], res.output
    assert sha256_file(fp32) == before


def test_an_ancestor_in_the_manifest_chain_is_refused_too(fp32, tmp_path):
    calib = _images(tmp_path / "calib", seed=1)
    int8 = _int8(fp32, calib).path
    from rtdeploy.guard import check_outputs

    with pytest.raises(OutputError, match="an ancestor of resnet20.int8.onnx"):
        check_outputs([("output", fp32)], [("model", int8)])


def test_a_second_writer_of_a_run_folder_gets_one_line_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out, what="run folder"):
        with pytest.raises(OutputError, match=r"run folder .* is in use by pid \d+"):
            api.run(depth=20, outdir=out, precision="fp32", bench=False, samples=4)
    assert not (out / "resnet20.onnx").exists(), "nothing may be written while another run holds the folder"
    assert not list(out.iterdir()), "the lock leaves nothing behind"


@pytest.mark.slow
def test_rebench_retimes_without_redoing_other_stages(tmp_path):
    out = tmp_path / "r"
    kw = dict(depth=20, outdir=out, precision="fp32", bench_duration="0.02s", samples=4)
    first = {s.name: s.status for s in api.run(**kw).stages}
    assert first["bench"] == "made"
    stamp = json.loads((out / "bench.json").read_text())["created"]
    second = api.run(**kw)
    st = {s.name: s for s in second.stages}
    assert st["export"].status == "reused" and st["bench"].status == "reused"
    assert "--rebench" in st["bench"].detail and "measured" in st["bench"].detail
    third = {s.name: s.status for s in api.run(**kw, rebench=True).stages}
    assert third == {**first, "export": "reused", "validate-fp32": "reused", "bench": "made"}
    assert json.loads((out / "bench.json").read_text())["created"] >= stamp


@pytest.mark.slow
def test_force_one_stage_redoes_it_and_its_dependents_only(tmp_path):
    out = tmp_path / "r"
    kw = dict(depth=20, outdir=out, precision="fp32", bench=False, samples=4)
    api.run(**kw)
    st = {s.name: s.status for s in api.run(**kw, force="validate").stages}
    assert st == {"export": "reused", "validate-fp32": "made", "build-engine": "skipped"}
    st = {s.name: s.status for s in api.run(**kw, force="export").stages}
    assert st["export"] == "made" and st["validate-fp32"] == "made"


def test_unknown_force_stage_is_refused_before_any_work(tmp_path):
    from rtdeploy.errors import RtDeployError

    with pytest.raises(RtDeployError, match="force 'quantise' is not a stage"):
        api.run(depth=20, outdir=tmp_path / "r", force="quantise")
    assert not (tmp_path / "r").exists()


def test_corrupt_stage_records_are_ignored_with_a_warning(tmp_path, caplog):
    out = tmp_path / "r"
    out.mkdir()
    (out / "stages.json").write_text("null")
    report = api.run(depth=20, outdir=out, precision="fp32", bench=False, samples=4)
    assert {s.name: s.status for s in report.stages}["validate-fp32"] == "made"
    assert "ignoring" in caplog.text


@pytest.mark.parametrize("onnx,precision,expected", [
    ("resnet50.onnx", "fp32", "resnet50.fp32.engine"),
    ("resnet50.int8.onnx", "int8", "resnet50.int8.engine"),
    ("resnet50.fp16.onnx", "fp16", "resnet50.fp16.engine"),
])
def test_one_naming_rule_for_engines(onnx, precision, expected):
    from rtdeploy.trt.stage import default_engine_path

    assert derived_path(Path(onnx), precision, ".engine").name == expected
    assert default_engine_path(Path(onnx), precision).name == expected


def test_run_and_build_engine_name_the_fp32_engine_alike(tmp_path, monkeypatch):
    built = []

    def build(opts):
        built.append(opts.output)
        raise OutputError("stop here")

    monkeypatch.setattr("rtdeploy.trt.build_engine", build)
    onnx = tmp_path / "resnet50.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(OutputError):
        from rtdeploy.trt import BuildOptions

        engine(BuildOptions(onnx=onnx, precision="fp32"))
    assert built == [tmp_path / "resnet50.fp32.engine"]


def test_a_second_packager_of_a_triton_repository_gets_one_line_naming_the_holder(fp32, tmp_path):
    from rtdeploy.serving.triton import write_repository

    repo = tmp_path / "models"
    repo.mkdir()
    with folder_lock(repo, what="Triton model repository"):
        with pytest.raises(OutputError, match=r"Triton model repository .* is in use by pid \d+"):
            write_repository(fp32, repo, kind="KIND_CPU")
    assert not list(repo.iterdir()), "nothing written while another packager holds it, and the lock leaves nothing"
    assert (write_repository(fp32, repo, kind="KIND_CPU") / "config.pbtxt").is_file()
    assert [p.name for p in repo.iterdir()] == ["resnet20"], "the lock leaves nothing behind"


def test_package_for_cpu_prefers_the_cpu_form_of_an_int8_model(fp32, tmp_path, caplog):
    from rtdeploy.make_or_reuse import quantized as make

    calib = _images(tmp_path / "calib", seed=1)
    trt_form = _int8(fp32, calib).path
    out = api.package(trt_form, triton=tmp_path / "a", kind="cpu")
    assert "--target onnxruntime-cpu" in caplog.text, "without a CPU form, say how to make one"
    assert (out / "1" / "model.onnx").read_bytes() == trt_form.read_bytes()
    cpu_form = make(QuantizeConfig(model=fp32, int8=True, calib_dir=calib, method="max", stats_cache=False,
                                   target="onnxruntime-cpu", output=derived_path(fp32, "int8-cpu"))).path
    out = api.package(trt_form, triton=tmp_path / "b", kind="cpu")
    assert (out / "1" / "model.onnx").read_bytes() == cpu_form.read_bytes()
    out = api.package(trt_form, triton=tmp_path / "c", kind="gpu")
    assert (out / "1" / "model.onnx").read_bytes() == trt_form.read_bytes(), "a GPU package keeps the TensorRT form"
