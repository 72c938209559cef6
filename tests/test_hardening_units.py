"""Unit tests of the hardening that the CLI matrix cannot reach directly (as root, or below the CLI)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from rtdeploy.errors import DataError, OutputError


# --- class 4: data ------------------------------------------------------------------------------

def _cifar_meta():
    from rtdeploy.models import model_meta

    return model_meta(20)


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    """Pillow's convert() clips 16-bit values at 255: a mid-grey 16-bit image became white."""
    from PIL import Image

    from rtdeploy.data.preprocess import load_image

    Image.fromarray(np.full((32, 32), 32896, np.uint16)).save(tmp_path / "g16.png")  # 32896 = 128 * 257
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(tmp_path / "g8.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    meta = _cifar_meta()
    np.testing.assert_array_equal(load_image(tmp_path / "g16.png", meta), load_image(tmp_path / "g8.png", meta))


def test_unreadable_subfolder_is_reported_not_skipped(tmp_path, monkeypatch):
    """A folder that cannot be listed used to be skipped silently (pathlib's rglob ignores the
    error): calibration then ran on fewer images than given. As root, permissions cannot make a
    folder unreadable, so the listing error is injected where the OS would raise it."""
    from PIL import Image

    from rtdeploy.data import ImageFolderSource

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / cls / f"{i}.png")
    locked, real = tmp_path / "b", os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataError, match=r"cannot read folder .*/b: Permission denied"):
        ImageFolderSource(tmp_path, _cifar_meta())


def test_labels_within_the_models_classes_pass(tmp_path):
    from rtdeploy.data import TensorFileSource
    from rtdeploy.data.sources import check_labels

    np.savez(tmp_path / "t.npz", images=np.zeros((3, 3, 32, 32), np.float32), labels=np.array([0, 9, 4]))
    check_labels(TensorFileSource(tmp_path / "t.npz", _cifar_meta()), 10)
    with pytest.raises(DataError, match="holds label 9, the model has 5 classes"):
        check_labels(TensorFileSource(tmp_path / "t.npz", _cifar_meta()), 5)


# --- class 1: writes ------------------------------------------------------------------------------

# Through links in tmp_path, never /dev itself: code that renames over its output would otherwise
# replace the machine's /dev/null or /dev/full with a regular file when such a test fails.

def test_write_to_a_full_device_is_an_error(tmp_path):
    from rtdeploy.files import write_json_atomic

    (tmp_path / "full").symlink_to("/dev/full")
    with pytest.raises(OutputError, match="full: No space left on device"):
        write_json_atomic(tmp_path / "full", {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["full"]


def test_write_to_dev_null_keeps_the_device(tmp_path):
    from rtdeploy.files import write_json_atomic

    (tmp_path / "null").symlink_to("/dev/null")
    write_json_atomic(tmp_path / "null", {"a": 1})
    assert (tmp_path / "null").is_symlink() and stat.S_ISCHR(os.stat(tmp_path / "null").st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def test_a_manifest_artifact_refuses_a_device(tmp_path):
    from rtdeploy.files import atomic_path

    (tmp_path / "null.onnx").symlink_to("/dev/null")
    with pytest.raises(OutputError, match="not a regular file"), atomic_path(tmp_path / "null.onnx", manifest=lambda tmp: {}):
        pass


def test_atomic_write_through_a_dangling_link_creates_the_target(tmp_path):
    from rtdeploy.files import write_text_atomic

    (tmp_path / "store").mkdir()
    (tmp_path / "link.txt").symlink_to(tmp_path / "store" / "new.txt")
    write_text_atomic(tmp_path / "link.txt", "hello")
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "store" / "new.txt").read_text() == "hello"


# --- class 8: names -------------------------------------------------------------------------------

@pytest.mark.parametrize("filename,name", [
    ("resnet50.int8.onnx", "resnet50_int8"), ("my model's.onnx", "my_model_s"), (".hidden.onnx", "_hidden"), ('a"b.plan', "a_b"),
])
def test_default_triton_name_is_derived_safely(filename, name):
    from rtdeploy.serving.triton import check_model_name, default_model_name

    assert default_model_name(Path(filename)) == name
    assert check_model_name(name) == name


# --- class 3: weights -----------------------------------------------------------------------------

def test_sane_weights_pass_the_value_check():
    from rtdeploy.models.reference import build_torch_model, check_weight_values

    check_weight_values(build_torch_model(_cifar_meta(), None), None)


def test_write_to_a_pipe_without_reader_is_an_error(tmp_path):
    """A --json FIFO or descriptor whose reader has gone: an OutputError naming it, not a stray OSError."""
    from rtdeploy.files import write_json_atomic

    r, w = os.pipe()
    os.close(r)
    try:
        (tmp_path / "pipe.json").symlink_to(f"/proc/self/fd/{w}")
        with pytest.raises(OutputError, match="pipe.json: nothing reads it any more"):
            write_json_atomic(tmp_path / "pipe.json", {"a": 1})
    finally:
        os.close(w)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.json"]
