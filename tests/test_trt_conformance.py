"""TensorRT API conformance against the REAL Python bindings of 8.6.1, 10.3.0, 10.13.3.9, 10.16.1.11 and 11.4.0.106,
8.5.3's surface derived from NVIDIA's sources (8.6.1 narrowed: tests/trt_stubs/surface.py), and the real
cuda-bindings 11.8.7 (with 8.5.3), 12.9.10 and 13.5.0.

Each release runs tests/trt_stubs/conformance_cases.py in its own process (all are the
module ``tensorrt_bindings``, each with its own stub libraries on LD_LIBRARY_PATH). These tests
prove that rtdeploy calls only what each release has, with arguments that fit its signatures; they
do NOT prove an engine builds or runs — that needs a GPU (tests/test_trt_gpu.py).

The wheels (about 1 MB each, plus cuda-bindings) come from PyPI into $RTDEPLOY_TRT_WHEELS or
~/.cache/rtdeploy/trt-wheels; without network or gcc the tests skip with the reason, unless
RTDEPLOY_REQUIRE_TRT_CONFORMANCE=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "trt_stubs"))

import harness  # noqa: E402

CASES = Path(__file__).resolve().parent / "trt_stubs" / "conformance_cases.py"


@pytest.fixture(scope="session")
def release_env():
    """A function release -> subprocess environment with that release's real bindings and stubs."""
    envs: dict[str, dict] = {}

    def get(version: str) -> dict:
        if version not in envs:
            try:
                envs[version] = harness.prepare(harness.RELEASES[version])
            except harness.Unavailable as e:
                if os.environ.get("RTDEPLOY_REQUIRE_TRT_CONFORMANCE") == "1":
                    pytest.fail(f"TensorRT {version} bindings unavailable but required: {e}")
                pytest.skip(f"TensorRT {version} bindings unavailable: {e}")
        return envs[version]

    return get


@pytest.mark.parametrize("version", list(harness.RELEASES))
@pytest.mark.slow
def test_api_conformance_with_real_bindings(release_env, version, tmp_path):
    env = release_env(version)
    proc = subprocess.run([sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t"),
                           "-o", "addopts=", "--rootdir", str(CASES.parent)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    assert proc.returncode == 0, f"TensorRT {version} conformance failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    assert " passed" in summary and "error" not in summary, summary


@pytest.mark.slow
def test_cli_with_real_trt11_and_no_gpu_ends_in_one_line(release_env, tmp_path):
    """`rtdeploy build-engine` on the real 11.4 bindings (stub libraries, no GPU): one clean line, exit 4."""
    env = release_env("11.4.0.106")
    onnx = _tiny_onnx(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "rtdeploy.cli.main", "build-engine", "--onnx", str(onnx), "--fp32", "-o", str(tmp_path / "m.engine")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 4, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: TensorRT 11.4.0.106 could not create a builder: no usable NVIDIA GPU or driver")
    assert "nothing lost" in lines[0] and f"--onnx {onnx}" in lines[0]
    assert not (tmp_path / "m.engine").exists()


def _tiny_onnx(folder: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["logits"], name="conv")], "tiny",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4, 6, 6])], [w])
    path = folder / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path
