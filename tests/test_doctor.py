"""rtdeploy doctor: informational, never fails, says what is missing for which command."""

from __future__ import annotations

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


GPU = {"available": True, "index": 0, "name": "NVIDIA Test GPU", "compute_capability": "8.9",
       "total_bytes": 24 * 2**30, "free_bytes": 20 * 2**30, "integrated": False}


def _availability(monkeypatch, *, trt=True, cuda=True, gpu=True, trt_reason="TensorRT is not available (not installed); install it with pip install \"rtdeploy[gpu]\""):
    """Make rtdeploy.trt.loader.availability() report the given parts, as doctor's only source for them."""
    from rtdeploy.trt import loader

    parts = {
        "tensorrt": {"available": True, "version": "10.3.0", "module": "tensorrt"} if trt else {"available": False, "reason": trt_reason},
        "cuda": {"available": True, "binding": "cuda.bindings.runtime"} if cuda
        else {"available": False, "reason": "cuda-python cannot be imported (No module named 'cuda'); pip install cuda-python"},
        "gpu": dict(GPU) if gpu else {"available": False, "reason": "no CUDA device: cudaErrorNoDevice"},
    }
    ok = trt and cuda and gpu
    monkeypatch.setattr(loader, "availability", lambda: {"ok": ok, **parts, "hint": "" if ok else "see the parts"})


def _torch_sees_no_gpu(monkeypatch):
    monkeypatch.setattr(doctor, "_torch_devices", lambda report: [])


def test_missing_tensorrt_says_how_to_get_it(monkeypatch):
    _availability(monkeypatch, trt=False)
    r = doctor.diagnose()
    missing = {m.name: m.fix for m in r.missing("build-engine")}
    assert set(missing) == {"tensorrt"} and 'rtdeploy[gpu]' in missing["tensorrt"]
    assert r.missing("validate / bench a TensorRT engine")
    assert r.tensorrt["tensorrt"]["available"] is False
    if "CUDAExecutionProvider" not in r.onnxruntime_providers:
        fix = r.missing("onnxruntime on GPU (--provider cuda)")[0].fix
        assert "onnxruntime-gpu" in fix


def test_build_engine_ready_follows_trt_availability(monkeypatch):
    real_version = md.version

    def no_trt_metadata(name):  # TensorRT installed outside pip (JetPack): only the module knows its version
        if name.startswith("tensorrt"):
            raise md.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(doctor.md, "version", no_trt_metadata)
    _availability(monkeypatch)
    _torch_sees_no_gpu(monkeypatch)
    r = doctor.diagnose()
    assert not r.missing("build-engine") and not r.missing("validate / bench a TensorRT engine")
    assert r.to_dict()["commands"]["build-engine"]["ready"] is True
    assert r.packages["tensorrt"] == "10.3.0" and "tensorrt" not in r.problems
    # With a CPU torch, the GPU comes from what rtdeploy.trt sees.
    assert r.cuda_devices == [{"index": 0, "name": "NVIDIA Test GPU", "capability": "8.9", "memory_gib": 24.0,
                               "seen_by": "cuda.bindings.runtime"}]


def test_no_cuda_python_is_not_ready_whatever_else_is_installed(monkeypatch):
    """rtdeploy.trt supports cuda-python only: pycuda (or anything else) does not make build-engine ready."""
    real_version = md.version
    monkeypatch.setattr(doctor.md, "version", lambda name: "2024.1" if name == "pycuda" else real_version(name))
    _availability(monkeypatch, cuda=False, gpu=False)
    r = doctor.diagnose()
    missing = {m.name: m.fix for m in r.missing("build-engine")}
    assert set(missing) == {"cuda-python", "a CUDA GPU"}
    assert "cuda-python" in missing["cuda-python"]
    assert "not checked" not in missing["a CUDA GPU"] and "nvidia-smi" in missing["a CUDA GPU"]
    assert "pycuda" not in r.packages


def test_no_gpu_is_reported_with_its_reason(monkeypatch):
    _availability(monkeypatch, gpu=False)
    _torch_sees_no_gpu(monkeypatch)
    r = doctor.diagnose()
    assert [m.name for m in r.missing("build-engine")] == ["a CUDA GPU"]
    assert "cudaErrorNoDevice" in r.missing("build-engine")[0].fix
    assert r.cuda_devices == []


def test_broken_tensorrt_install_is_reported_not_raised(monkeypatch):
    real_version = md.version
    monkeypatch.setattr(doctor.md, "version", lambda name: "10.0.1" if name == "tensorrt" else real_version(name))
    _availability(monkeypatch, trt=False, trt_reason="TensorRT is not available (import tensorrt failed: "
                  "libnvinfer.so.10: cannot open shared object file); install it with pip install \"rtdeploy[gpu]\"")
    r = doctor.diagnose()
    assert r.packages["tensorrt"] == "10.0.1"
    assert "libnvinfer" in r.problems["tensorrt"] and "installed but not usable" in r.problems["tensorrt"]
    assert any("libnvinfer" in m.fix for m in r.missing("build-engine"))


def test_availability_that_raises_is_a_finding_not_a_crash(monkeypatch):
    from rtdeploy.trt import loader

    def boom():
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(loader, "availability", boom)
    r = doctor.diagnose()
    assert {m.name for m in r.missing("build-engine")} == {"tensorrt", "cuda-python", "a CUDA GPU"}
    assert "driver exploded" in r.missing("build-engine")[0].fix


def test_doctor_imports_no_tensorrt_or_cuda_binding_itself():
    """The project rule: tensorrt and the CUDA bindings are imported only in rtdeploy/trt."""
    import inspect

    src = inspect.getsource(doctor)
    for banned in ("import tensorrt", "import pycuda", "from cuda", "import cuda", "import_module("):
        assert banned not in src, banned


def test_cli_exits_zero_with_tables_and_json(tmp_path):
    result = CliRunner().invoke(_cli(), ["doctor"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime providers:" in result.output and "build-engine" in result.output
    result = CliRunner().invoke(_cli(), ["doctor", "--json"])
    assert result.exit_code == 0
    d = json.loads(result.output)
    assert d["commands"]["export"]["ready"] is True
    assert set(d) >= {"python", "packages", "onnxruntime_providers", "cuda_devices", "tensorrt", "commands"}
    assert set(d["tensorrt"]) >= {"ok", "tensorrt", "cuda", "gpu", "hint"}
    out = tmp_path / "d.json"
    assert CliRunner().invoke(_cli(), ["doctor", "--json", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["packages"]["onnx"]
