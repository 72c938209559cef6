"""Every bad input of issue 2 through the CLI: one actionable line, the exit code, no partial file."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from click.testing import CliRunner

from rtdeploy.models import build_model, model_meta
from conftest import message_lines


class NotATensor:
    """A pickled object that torch.load(weights_only=True) must refuse."""


@pytest.fixture(scope="module")
def cli():
    from rtdeploy.cli.main import _register, cli

    _register()
    return cli


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def invoke(cli, *args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = message_lines(result.stderr)  # the phase lines of a pipe are progress, not messages
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _r20_state(**kw):
    torch.manual_seed(0)
    return build_model(model_meta(20, **kw)).state_dict()


# --- export ---------------------------------------------------------------------------------

def test_unknown_depth(cli, out):
    line = assert_one_line_error(invoke(cli, "export", "--depth", 19, "-o", out / "x.onnx"), 1, "unknown depth 19")
    assert "18/34/50/101/152" in line and "20/32/44/56/110" in line
    assert list(out.iterdir()) == []


def test_weights_missing(cli, out, tmp_path):
    assert_one_line_error(invoke(cli, "export", "--depth", 20, "--weights", tmp_path / "nope.pth", "-o", out / "x.onnx"), 1,
                          "nope.pth does not exist")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("case", ["truncated", "text", "pickled-object", "no-tensors"])
def test_weights_unreadable(cli, out, tmp_path, case):
    w = tmp_path / "w.pth"
    if case == "truncated":
        torch.save(_r20_state(), w)
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
        expect = "cannot read weights"
    elif case == "text":
        w.write_text("these are not weights\n")
        expect = "cannot read weights"
    elif case == "pickled-object":
        torch.save({"model": NotATensor()}, w)
        expect = "cannot read weights"
    else:
        torch.save({"epoch": 3, "lr": 0.1}, w)
        expect = "no state dict"
    assert_one_line_error(invoke(cli, "export", "--depth", 20, "--weights", w, "-o", out / "x.onnx"), 1, expect, "w.pth")
    assert list(out.iterdir()) == []


def test_weights_with_missing_key(cli, out, tmp_path):
    state = _r20_state()
    state["fc.weight"] = state.pop("linear.weight")
    torch.save(state, tmp_path / "w.pth")
    assert_one_line_error(invoke(cli, "export", "--depth", 20, "--weights", tmp_path / "w.pth", "-o", out / "x.onnx"), 1,
                          "missing key 'linear.weight'", "(10, 64)")
    assert list(out.iterdir()) == []


def test_weights_with_unexpected_key(cli, out, tmp_path):
    state = _r20_state()
    state["layer4.0.conv1.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pth")
    assert_one_line_error(invoke(cli, "export", "--depth", 20, "--weights", tmp_path / "w.pth", "-o", out / "x.onnx"), 1,
                          "unexpected key 'layer4.0.conv1.weight'")
    assert list(out.iterdir()) == []


def test_weights_with_mismatched_shape_name_the_first_key(cli, out, tmp_path):
    torch.save(_r20_state(num_classes=5), tmp_path / "w.pth")
    assert_one_line_error(invoke(cli, "export", "--depth", 20, "--weights", tmp_path / "w.pth", "-o", out / "x.onnx"), 1,
                          "'linear.weight' has shape (5, 64), expected (10, 64)")
    assert list(out.iterdir()) == []


def test_weights_for_another_depth(cli, out, tmp_path):
    torch.manual_seed(0)
    torch.save(build_model(model_meta(32)).state_dict(), tmp_path / "r32.pth")
    assert_one_line_error(invoke(cli, "export", "--depth", 20, "--weights", tmp_path / "r32.pth", "-o", out / "x.onnx"), 1,
                          "unexpected key 'layer1.3.conv1.weight'")


def test_output_directory_missing(cli, tmp_path):
    assert_one_line_error(invoke(cli, "export", "--depth", 20, "-o", tmp_path / "missing" / "x.onnx"), 1, "does not exist", "mkdir")
    assert not (tmp_path / "missing").exists()


def test_output_parent_is_a_file(cli, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    assert_one_line_error(invoke(cli, "export", "--depth", 20, "-o", tmp_path / "file.txt" / "x.onnx"), 1, "is not a directory")
    assert (tmp_path / "file.txt").read_text() == "x"


def test_output_directory_not_writable(cli, out, monkeypatch):
    # Tests run as root, for whom permission bits do not bind; the check itself is what is tested.
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    assert_one_line_error(invoke(cli, "export", "--depth", 20, "-o", out / "x.onnx"), 1, "is not writable")
    assert list(out.iterdir()) == []


def test_failure_after_writing_leaves_no_partial_file(cli, out, monkeypatch):
    from rtdeploy.errors import ExportError
    from rtdeploy.export import onnx_export

    def fail_after_writing(data, meta, batch, path):
        path.write_bytes(data[: len(data) // 2])
        raise ExportError("the exported ONNX failed onnx.checker: simulated")

    monkeypatch.setattr(onnx_export, "_check_and_finalize", fail_after_writing)
    assert_one_line_error(invoke(cli, "export", "--depth", 20, "-o", out / "x.onnx"), 1, "simulated")
    assert list(out.iterdir()) == []


def test_export_success_prints_one_summary_line(cli, out):
    result = invoke(cli, "export", "--depth", 20, "-o", out / "r20.onnx")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out / 'r20.onnx'}") and result.stdout.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["r20.onnx", "r20.onnx.json"]


# --- validate -------------------------------------------------------------------------------

@pytest.fixture
def onnx_model(tmp_path, exported):
    """A private copy of an exported CIFAR ResNet-20 and its manifest."""
    src = exported(20).path
    dst = tmp_path / "m.onnx"
    shutil.copy(src, dst)
    shutil.copy(src.with_name(src.name + ".json"), tmp_path / "m.onnx.json")
    return dst


@pytest.mark.parametrize("content", [b"\x00\x01garbage that is not protobuf\xff" * 10, b"just some text\n", b""])
def test_validate_non_onnx_file(cli, out, tmp_path, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    assert_one_line_error(invoke(cli, "validate", bad, "--json", out / "r.json"), 1, "bad.onnx is not an ONNX model")
    assert list(out.iterdir()) == []


def test_validate_missing_file(cli, tmp_path):
    assert_one_line_error(invoke(cli, "validate", tmp_path / "none.onnx"), 1, "none.onnx does not exist")


def test_validate_truncated_onnx_with_manifest(cli, out, onnx_model):
    onnx_model.write_bytes(onnx_model.read_bytes()[:1000])
    assert_one_line_error(invoke(cli, "validate", onnx_model, "--json", out / "r.json"), 1, "does not match its manifest")
    assert list(out.iterdir()) == []


def test_validate_onnx_without_manifest(cli, onnx_model):
    (onnx_model.parent / "m.onnx.json").unlink()
    assert_one_line_error(invoke(cli, "validate", onnx_model), 1, "has no manifest", "rtdeploy export")


def test_validate_corrupt_manifest(cli, onnx_model):
    (onnx_model.parent / "m.onnx.json").write_text("{not json")
    assert_one_line_error(invoke(cli, "validate", onnx_model), 1, "not valid JSON")


def test_validate_empty_images_folder(cli, out, onnx_model, tmp_path):
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    assert_one_line_error(invoke(cli, "validate", onnx_model, "--images", tmp_path / "imgs", "--json", out / "r.json"), 1,
                          "holds no images")
    assert list(out.iterdir()) == []


def test_validate_images_with_an_unreadable_file(cli, out, onnx_model, tmp_path):
    from PIL import Image

    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (32, 32), (i, 50, 90)).save(tmp_path / "imgs" / "cat" / f"{i}.png")
    (tmp_path / "imgs" / "cat" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert_one_line_error(invoke(cli, "validate", onnx_model, "--images", tmp_path / "imgs", "--json", out / "r.json"), 1,
                          "cannot read image", "1.png")
    assert list(out.iterdir()) == []


def test_validate_missing_images_folder(cli, onnx_model, tmp_path):
    assert_one_line_error(invoke(cli, "validate", onnx_model, "--images", tmp_path / "nowhere"), 1, "does not exist")


def test_validate_bad_batch(cli, onnx_model):
    assert_one_line_error(invoke(cli, "validate", onnx_model, "--batch", 0), 1, "--batch")


def test_validate_pass_prints_tables_and_json(cli, out, onnx_model):
    result = invoke(cli, "validate", onnx_model, "--samples", 4, "--json", out / "r.json")
    assert result.exit_code == 0, result.stderr
    assert "cosine_mean" in result.output and "PASS" in result.output
    assert json.loads((out / "r.json").read_text())["passed"] is True


def test_validate_out_of_tolerance_exits_3_naming_the_worst(cli, out, onnx_model):
    # A limit no float computation meets (zero error against PyTorch: onnxruntime rounds in another
    # order) makes the (correct) model fail: the exit code and message are under test. (A cosine
    # limit above 1 used to serve; it is now refused as not a fraction, see test_bad_inputs.py.)
    result = invoke(cli, "validate", onnx_model, "--samples", 4, "--tol-max-abs", 0, "--json", out / "r.json")
    line = assert_one_line_error(result, 3, "out of tolerance", "worst max_abs_err_of_range")
    assert "max_abs_err_of_range" in result.output  # the table is printed before the verdict
    assert json.loads((out / "r.json").read_text())["passed"] is False
    assert "> 0" in line
