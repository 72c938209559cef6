"""Triton model repositories: configs parse against Triton's own ModelConfig schema."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from manifest_fakes import write_engine_manifest
from rtdeploy.artifacts import read_manifest
from rtdeploy.files import manifest_path
from rtdeploy.cli.main import _register, cli
from rtdeploy.errors import OutputError, PackageError
from rtdeploy.serving.triton import write_repository

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (dev extra) not installed")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse(path):
    """Parse config.pbtxt strictly: an unknown field or bad enum raises."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture
def onnx20(exported):
    return exported(20).path


def fake_engine(tmp_path, onnx_path, profile_max=16, profile=None, **kw):
    engine = tmp_path / "r20.int8.plan"
    engine.write_bytes(b"not really a plan")
    write_engine_manifest(engine, onnx_path, precision="int8", model=read_manifest(onnx_path)["model"],
                          profile=profile or (1, 8, profile_max), **kw)
    return engine


def test_onnx_config_parses_with_dynamic_batching(tmp_path, onnx20):
    dest = write_repository(onnx20, tmp_path / "repo", name="r20", kind="KIND_CPU", preferred=(4, 8))
    cfg = parse(dest / "config.pbtxt")
    assert cfg.platform == "onnxruntime_onnx"
    assert cfg.max_batch_size == 32
    assert [(i.name, list(i.dims)) for i in cfg.input] == [("input", [3, 32, 32])]
    assert cfg.input[0].data_type == model_config_pb2.TYPE_FP32
    assert [(o.name, list(o.dims)) for o in cfg.output] == [("logits", [10])]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert (dest / "1" / "model.onnx").read_bytes() == onnx20.read_bytes()


def test_fixed_batch_onnx_has_no_triton_batching(tmp_path, exported):
    fixed = exported(20, batch=4).path
    cfg = parse(write_repository(fixed, tmp_path / "repo", name="fixed") / "config.pbtxt")
    assert cfg.max_batch_size == 0
    assert list(cfg.input[0].dims) == [4, 3, 32, 32]
    assert not cfg.HasField("dynamic_batching")


def test_engine_config_takes_max_batch_from_profile(tmp_path, onnx20):
    engine = fake_engine(tmp_path, onnx20, profile_max=16)
    dest = write_repository(engine, tmp_path / "repo")
    cfg = parse(dest / "config.pbtxt")
    assert cfg.name == "r20_int8"
    assert cfg.platform == "tensorrt_plan"
    assert cfg.max_batch_size == 16
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert (dest / "1" / "model.plan").exists()


def test_max_batch_above_engine_profile_is_refused(tmp_path, onnx20):
    engine = fake_engine(tmp_path, onnx20, profile_max=8)
    with pytest.raises(PackageError, match="exceeds the engine's profile maximum 8"):
        write_repository(engine, tmp_path / "repo", max_batch=64)
    assert not (tmp_path / "repo" / "r20_int8").exists()


def test_existing_model_needs_force(tmp_path, onnx20):
    write_repository(onnx20, tmp_path / "repo", name="m")
    with pytest.raises(OutputError, match="already exists; pass --force"):
        write_repository(onnx20, tmp_path / "repo", name="m")
    write_repository(onnx20, tmp_path / "repo", name="m", force=True, version=2)
    assert (tmp_path / "repo" / "m" / "2" / "model.onnx").exists()


def test_failed_copy_leaves_nothing(tmp_path, onnx20, monkeypatch):
    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full)
    with pytest.raises(OutputError, match="No space left on device"):
        write_repository(onnx20, tmp_path / "repo", name="m")
    assert list((tmp_path / "repo").iterdir()) == []


def test_cli_package_and_bad_input(tmp_path, onnx20):
    _register()
    runner = CliRunner()
    ok = runner.invoke(cli, ["package", str(onnx20), "--triton", str(tmp_path / "repo"), "--kind", "cpu", "--name", "x"])
    assert ok.exit_code == 0, ok.output
    parse(tmp_path / "repo" / "x" / "config.pbtxt")
    engine = fake_engine(tmp_path, onnx20)
    bad = runner.invoke(cli, ["package", str(engine), "--triton", str(tmp_path / "repo2"), "--kind", "cpu"])
    assert bad.exit_code != 0
    assert bad.output.strip().count("\n") == 0 and "runs only on a GPU" in bad.output
    assert not (tmp_path / "repo2").exists()


def test_engine_manifest_without_its_onnx_is_a_clear_error(tmp_path, onnx20):
    engine = fake_engine(tmp_path, onnx20)
    m = json.loads(manifest_path(engine).read_text())
    m["parent"]["path"] = str(tmp_path / "gone.onnx")
    manifest_path(engine).write_text(json.dumps(m))
    with pytest.raises(Exception, match="cannot find the ONNX model"):
        write_repository(engine, tmp_path / "repo")


@pytest.mark.parametrize("profile,args,needle", [
    ((4, 16, 32), [], "rebuild with --batch 1:16:32"),
    ((8, 8, 8), ["--max-batch", "8"], "runs batch 8 only"),
    ((8, 8, 8), ["--preferred-batch", "4"], "max_batch_size 0"),
    ((1, 8, 32), ["--max-batch", "0"], "give --max-batch 1..32"),
], ids=["profile-4-16-32", "static-with-max-batch", "static-with-preferred", "dynamic-engine-max-batch-0"])
def test_package_refuses_what_would_send_batches_outside_the_profile(tmp_path, onnx20, profile, args, needle):
    """tensorrt_backend instance_state.cc SetBindingDimensions refuses every batch outside the profile,
    and Triton's dynamic batcher forms batches from 1 up to max_batch_size: refused in one line, nothing written."""
    _register()
    engine = fake_engine(tmp_path, onnx20, profile=profile)
    result = CliRunner().invoke(cli, ["package", str(engine), "--triton", str(tmp_path / "repo"), *args])
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_version_compatible_plan_says_which_flag_triton_needs(tmp_path, onnx20, caplog):
    engine = fake_engine(tmp_path, onnx20, version_compatible=True)
    with caplog.at_level("WARNING", logger="rtdeploy"):
        dest = write_repository(engine, tmp_path / "repo")
    flag = "--backend-config=tensorrt,version-compatible=true"
    assert flag in (dest / "config.pbtxt").read_text() and any(flag in r.getMessage() for r in caplog.records)
    parse(dest / "config.pbtxt")


def test_a_type_triton_does_not_have_is_refused_in_one_line(tmp_path):
    """Triton's DataType has no float8 (model_config.proto); the onnxruntime backend maps no other ONNX type
    (onnxruntime_utils.cc ConvertFromOnnxDataType): refused, instead of a TYPE_UNKNOWN_n that does not parse."""
    import onnx
    from onnx import TensorProto

    from rtdeploy import api
    from tiny_graphs import foreign_multi_output

    path = tmp_path / "f8.onnx"
    onnx.save(foreign_multi_output(odd_names=False, label=False, confident=False, extra_types=(TensorProto.FLOAT8E4M3FN,), opset=19),
              str(path))
    api.import_model(path, preprocess="none")
    with pytest.raises(PackageError, match="'as_float8e4m3fn' is FLOAT8E4M3FN, which Triton has no data type for"):
        write_repository(path, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
