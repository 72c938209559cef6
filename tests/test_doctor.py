"""rtdeploy doctor: informational, never fails, says what is missing for which command."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json

from click.testing import CliRunner

from rtdeploy import doctor


def _cli():
    from rtdeploy.cli.main import _register, cli

    _register()
    return cli


def test_report_lists_versions_and_providers():
    r = doctor.diagnose()
    assert r.packages["torch"] and r.packages["onnx"] and r.packages["onnxruntime"]
    assert "CPUExecutionProvider" in r.onnxruntime_providers
    assert r.python["version"].count(".") == 2
    assert not r.missing("export") and not r.missing("summary")


def test_missing_tensorrt_says_how_to_get_it(monkeypatch):
    real_version = md.version

    def no_trt(name):
        if name.startswith("tensorrt") or name in ("cuda-python", "pycuda"):
            raise md.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(doctor.md, "version", no_trt)
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name, *a: None)
    r = doctor.diagnose()
    missing = {m.name: m.fix for m in r.missing("build-engine")}
    assert "tensorrt" in missing and 'rtdeploy[gpu]' in missing["tensorrt"]
    if "CUDAExecutionProvider" not in r.onnxruntime_providers:
        fix = r.missing("onnxruntime on GPU (--provider cuda)")[0].fix
        assert "onnxruntime-gpu" in fix


def test_broken_tensorrt_install_is_reported_not_raised(monkeypatch):
    real_version, real_import = md.version, importlib.import_module

    def fake_version(name):
        return "10.0.1" if name == "tensorrt" else real_version(name)

    def failing_import(name, *args, **kwargs):
        if name == "tensorrt":
            raise OSError("libnvinfer.so.10: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(doctor.md, "version", fake_version)
    monkeypatch.setattr(doctor.importlib, "import_module", failing_import)
    r = doctor.diagnose()
    assert r.packages["tensorrt"] is None
    assert "libnvinfer" in r.problems["tensorrt"]
    assert any("libnvinfer" in m.fix for m in r.missing("build-engine"))


def test_cli_exits_zero_with_tables_and_json(tmp_path):
    result = CliRunner().invoke(_cli(), ["doctor"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime providers:" in result.output and "build-engine" in result.output
    result = CliRunner().invoke(_cli(), ["doctor", "--json"])
    assert result.exit_code == 0
    d = json.loads(result.output)
    assert d["commands"]["export"]["ready"] is True
    assert set(d) >= {"python", "packages", "onnxruntime_providers", "cuda_devices", "commands"}
    out = tmp_path / "d.json"
    assert CliRunner().invoke(_cli(), ["doctor", "--json", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["packages"]["onnx"]
