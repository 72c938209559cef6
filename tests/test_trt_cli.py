"""`rtdeploy build-engine` on bad input and without TensorRT: one line, non-zero exit, nothing partial."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rtdeploy.cli.build_engine_cmd import build_engine

HAS_TENSORRT = any(importlib.util.find_spec(m) is not None for m in ("tensorrt", "tensorrt_bindings"))


def tiny_onnx(folder: Path, *, batch="batch", qdq=False) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")]
    nodes, src = [], "input"
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"])]
        src = "dq"
    nodes.append(helper.make_node("Conv", [src, "w"], ["logits"], name="conv"))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4, 6, 6])], inits)
    path = folder / ("tiny.int8.onnx" if qdq else "tiny.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def run(*args):
    result = CliRunner().invoke(build_engine, [str(a) for a in args])
    lines = result.output.strip().splitlines()
    return result.exit_code, lines


def one_line_error(code, lines, expected_code, fragment):
    assert code == expected_code, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args, code, fragment", [
    (["--batch", "32:8:1"], 1, "--batch 32:8:1 is not ordered"),
    (["--batch", "1:8:32", "--dla-core", "0", "--fp16"], 1, "DLA needs a static profile"),
    (["--gpu-fallback"], 1, "--gpu-fallback only applies with --dla-core"),
    (["--workspace", "lots"], 1, "--workspace 'lots' is not a size"),
    (["--int8", "--no-calibrate"], 1, "--int8 with --no-calibrate needs a Q/DQ ONNX, but tiny.onnx has no QuantizeLinear/DequantizeLinear"),
    (["--fp32", "-o", "/nonexistent-dir/m.engine"], 1, "output directory /nonexistent-dir does not exist"),
    (["--fp32", "-o", "tiny.onnx/m.engine"], 1, "is not a directory"),
])
def test_bad_input_is_one_line(tmp_path, args, code, fragment, monkeypatch):
    monkeypatch.chdir(tmp_path)
    onnx = tiny_onnx(tmp_path)
    one_line_error(*run("--onnx", onnx, *args), code, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"], "nothing may be written"


def test_fixed_batch_onnx_must_match_the_profile(tmp_path):
    onnx = tiny_onnx(tmp_path, batch=4)
    one_line_error(*run("--onnx", onnx, "--batch", "1:8:32"), 1, "fixed batch of 4, so --batch 1:8:32 cannot be built; use --batch 4")


def test_qdq_onnx_asked_as_fp32_is_refused(tmp_path):
    onnx = tiny_onnx(tmp_path, qdq=True)
    one_line_error(*run("--onnx", onnx, "--fp32"), 1, "tiny.int8.onnx carries INT8, not FP32; build it with --int8")


def test_output_path_not_writable(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere; permissions cannot be tested as root")
    onnx = tiny_onnx(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    one_line_error(*run("--onnx", onnx, "-o", locked / "m.engine"), 1, "is not writable")


def test_missing_onnx_and_depth_with_onnx(tmp_path):
    one_line_error(*run("--onnx", tmp_path / "none.onnx", "--fp32"), 1, "does not exist")
    code, lines = run("--onnx", tiny_onnx(tmp_path), "--depth", "18")
    assert code == 2 and "give --depth or --onnx, not both" in "\n".join(lines)


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here; this checks the message without it")
def test_without_tensorrt_the_qdq_onnx_is_kept_and_the_line_says_how_to_get_it(tmp_path):
    onnx = tiny_onnx(tmp_path, qdq=True)
    code, lines = run("--onnx", onnx, "-o", tmp_path / "m.engine")
    one_line_error(code, lines, 4, 'TensorRT is not available (not installed); install it with pip install "rtdeploy[gpu]"')
    assert f"nothing lost: {onnx} is ready; build it where TensorRT and a GPU are: rtdeploy build-engine --onnx {onnx.resolve()} --int8" in lines[0]
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here; this checks the message without it")
def test_without_tensorrt_the_precision_onnx_is_still_made_and_reused(tmp_path, monkeypatch):
    """FP16 from an FP32 ONNX: the FP16 model is made (via api.quantize) before TensorRT is needed."""
    from manifest_fakes import write_derived_manifest, write_onnx_manifest

    calls = []

    def quantize(cfg):  # a stand-in for the quantize stage, recording the derivation the real stage records
        import onnx
        from onnx import numpy_helper

        from rtdeploy.make_or_reuse import quantize_wanted

        model, output = Path(cfg.model), Path(cfg.output)
        calls.append(model)
        m = onnx.load(str(model))
        for init in m.graph.initializer:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
        onnx.save(m, str(output))
        write_derived_manifest(output, model, "fp16", derivation=quantize_wanted(cfg))
        return type("R", (), {"path": output})()

    monkeypatch.setattr("rtdeploy.make_or_reuse.quantize", quantize)
    onnx = tiny_onnx(tmp_path)
    from rtdeploy.models import model_meta

    # Reuse needs the calibration data's fingerprint, hence the model's preprocessing from its manifest.
    write_onnx_manifest(onnx, model_meta(20, image_size=8).to_dict())
    for _ in range(2):
        code, lines = run("--onnx", onnx, "--fp16")
        one_line_error(code, lines, 4, "TensorRT is not available")
        assert f"nothing lost: {tmp_path / 'tiny.fp16.onnx'} is ready" in lines[0]
    assert calls == [onnx], "the second run must reuse tiny.fp16.onnx (its manifest matches)"
    assert not list(tmp_path.glob("*.engine"))
