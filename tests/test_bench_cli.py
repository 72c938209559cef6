"""`rtdeploy bench` option parsing and every bad input: one line, non-zero exit, nothing run."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from manifest_fakes import write_engine_manifest
from rtdeploy.bench.options import ALL_DEPTHS, BenchConfig, parse_depths, parse_duration, parse_names
from rtdeploy.cli.main import _register, cli
from rtdeploy.errors import BenchmarkError, ModelError


@pytest.fixture(scope="module")
def invoke():
    _register()

    def run(*args: str):
        return CliRunner().invoke(cli, ["bench", *args], catch_exceptions=False)

    return run


def one_line_error(result, *fragments: str, code: int | None = None) -> str:
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("text, seconds", [("200ms", 0.2), ("3s", 3.0), ("1.5", 1.5), ("2m", 120.0), (" 50 MS ", 0.05), (0.25, 0.25)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0", "0s", "-1s", "-200ms", "abc", "3h", ""])
def test_parse_duration_rejects(text):
    with pytest.raises(BenchmarkError):
        parse_duration(text)


def test_parse_duration_allows_zero_warmup_only_when_asked():
    assert parse_duration("0", "--warmup", allow_zero=True) == 0.0


def test_parse_lists():
    assert parse_depths("all") == ALL_DEPTHS
    assert parse_depths("18, 50") == (18, 50)
    with pytest.raises(BenchmarkError, match="names '18' twice"):
        parse_depths("18,50,18")  # a repeat is a typo, not a request
    assert parse_depths(56) == (56,)
    assert parse_names("FP32,int8", "--precision", ("fp32", "fp16", "int8")) == ("fp32", "int8")
    with pytest.raises(ModelError, match="valid depths"):
        parse_depths("19")
    with pytest.raises(BenchmarkError):
        parse_depths("18,x")


def test_config_defaults_and_lengths(tmp_path):
    cfg = BenchConfig(workdir=tmp_path)
    assert (cfg.names, cfg.backend, cfg.precision, cfg.batch, cfg.device) == (("resnet50",), ("onnxruntime",), ("fp32",), (1,), "cpu")
    assert (cfg.warmup, cfg.iterations, cfg.duration, cfg.repeats, cfg.streams) == (0.2, None, None, 3, (1,))
    assert cfg.rule("cpu").min_iterations == 20 and cfg.rule("cuda").min_iterations == 200
    assert cfg.rule("cpu").min_duration_s == 1.0
    cfg = BenchConfig(iterations="5", batch="1,8", warmup="0", workdir=tmp_path)
    assert cfg.iterations == 5 and cfg.batch == (1, 8) and cfg.warmup == 0.0
    assert (cfg.rule("cuda").min_iterations, cfg.rule("cuda").min_duration_s) == (5, 1.0)  # both minima still apply
    cfg = BenchConfig(iterations="5", duration="0", streams="1,2", workdir=tmp_path)
    assert cfg.rule("cpu").min_duration_s == 0.0 and cfg.streams == (1, 2)


@pytest.mark.parametrize("args, fragments", [
    (["--backend", "tflite"], ["unknown backend 'tflite'", "torch, onnxruntime, tensorrt"]),
    (["--precision", "int4"], ["unknown precision 'int4'", "fp32, fp16, int8"]),
    (["--device", "tpu"], ["unknown device 'tpu'", "cpu, cuda"]),
    (["--iterations", "0"], ["--iterations '0'", "positive"]),
    (["--iterations", "-5"], ["--iterations '-5'", "positive"]),
    (["--duration", "-3s"], ["--duration '-3s'", "negative"]),
    (["--duration", "soon"], ["not a duration"]),
    (["--warmup", "-1s"], ["--warmup"]),
    (["--streams", "0"], ["--streams '0'", "positive integers"]),
    (["--export-profile", "/no/such/dir/p.json", "--backend", "tensorrt"], ["/no/such/dir does not exist"]),
    (["--export-profile", "p.json"], ["--export-profile", "TensorRT", "--backend tensorrt"]),
    (["--export-times", "t.json", "--backend", "tensorrt", "--depth", "18,50"], ["--export-times", "one --depth"]),
    (["--export-profile", "p.json", "--backend", "tensorrt", "--batch", "1,8"], ["single --batch"]),
    (["--export-profile", "p.json", "--backend", "tensorrt", "--streams", "2"], ["no --streams"]),
    (["--batch", "0"], ["--batch '0'", "positive integers"]),
    (["--repeats", "0"], ["--repeats"]),
    (["--threads", "-2"], ["--threads"]),
    (["--depth", "19"], ["unknown depth 19", "valid depths"]),
    (["--json", "/no/such/dir/report.json"], ["output directory /no/such/dir does not exist"]),
    (["--markdown", "/no/such/dir/report.md"], ["/no/such/dir does not exist"]),
    (["--plot", "/no/such/dir/plot.png"], ["/no/such/dir does not exist"]),
    (["--precision", "int8", "--backend", "torch"], ["nothing to run", "INT8"]),
])
def test_bad_inputs_fail_in_one_line(invoke, tmp_path, args, fragments):
    one_line_error(invoke(*args, "--workdir", str(tmp_path)), *fragments)
    assert not any(tmp_path.iterdir()), "nothing may be prepared for a request that cannot run"


def test_backend_not_installed_names_the_extra(invoke, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` now raises ImportError
    line = one_line_error(invoke("--backend", "tensorrt", "--device", "cuda", "--depth", "20", "--workdir", str(tmp_path)), code=4)
    assert "--backend tensorrt is not installed" in line and "rtdeploy[gpu]" in line


def test_cuda_without_a_gpu(invoke, tmp_path, monkeypatch):
    monkeypatch.setattr("rtdeploy.machine.cuda_device_visible", lambda: False)
    one_line_error(invoke("--device", "cuda", "--depth", "20", "--workdir", str(tmp_path)), "--device cuda", "no NVIDIA GPU", code=4)


def test_tensorrt_without_a_gpu(invoke, tmp_path, monkeypatch):
    monkeypatch.setattr("rtdeploy.bench.backends.check_installed", lambda backend: None)
    monkeypatch.setattr("rtdeploy.machine.cuda_device_visible", lambda: False)
    one_line_error(invoke("--backend", "tensorrt", "--depth", "20", "--workdir", str(tmp_path)), "needs an NVIDIA GPU", code=4)


def fake_engine(tmp_path, profile: dict):
    engine = tmp_path / "resnet20.int8.engine"
    engine.write_bytes(b"not a real plan")
    from rtdeploy.models import model_meta

    write_engine_manifest(engine, tmp_path / "resnet20.int8.onnx", precision="int8", model=model_meta(20).to_dict(),
                          profile=(profile["min"], profile["opt"], profile["max"]))
    return engine


def test_batch_larger_than_engine_profile(invoke, tmp_path):
    engine = fake_engine(tmp_path, {"min": 1, "opt": 8, "max": 16})
    line = one_line_error(invoke("--model", str(engine), "--batch", "8,32", "--workdir", str(tmp_path)))
    assert "--batch 32 is larger than engine resnet20.int8.engine's optimization profile (max batch 16)" in line


def test_fixed_batch_onnx_rejects_other_batches(invoke, tmp_path, exported):
    onnx = exported(20, batch=2).path
    line = one_line_error(invoke("--model", str(onnx), "--batch", "1", "--iterations", "1", "--duration", "0", "--workdir", str(tmp_path)))
    assert "fixed batch of 2" in line and "--batch 2" in line


def test_missing_model_file(invoke, tmp_path):
    one_line_error(invoke("--model", str(tmp_path / "nope.onnx"), "--workdir", str(tmp_path)), "does not exist")
