"""rtdeploy.data: preprocessing and input sources."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rtdeploy.data import ImageFolderSource, SyntheticSource, TensorFileSource, load_image, open_source
from rtdeploy.errors import DataError
from rtdeploy.models import model_meta

CIFAR = model_meta(20)
IMAGENET_SMALL = model_meta(18, image_size=64)  # resize shorter side to 73, crop 64


def _save(path, size=(32, 32), color=(128, 64, 32), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def _expected_uniform(color, meta):
    mean, std = np.array(meta.mean), np.array(meta.std)
    return ((np.array(color) / 255.0 - mean) / std).astype(np.float32)


# --- load_image -------------------------------------------------------------------------------

def test_uniform_rgb_image_is_scaled_and_normalized(tmp_path):
    x = load_image(_save(tmp_path / "a.png"), CIFAR)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 5, 7], _expected_uniform((128, 64, 32), CIFAR), rtol=1e-6)


@pytest.mark.parametrize("mode,color", [("L", 100), ("RGBA", (10, 20, 30, 40)), ("P", 3)])
def test_other_modes_become_rgb(tmp_path, mode, color):
    x = load_image(_save(tmp_path / "a.png", mode=mode, color=color), CIFAR)
    assert x.shape == (3, 32, 32)
    if mode == "L":  # gray -> equal RGB values before normalization
        raw = x * np.array(CIFAR.std)[:, None, None] + np.array(CIFAR.mean)[:, None, None]
        np.testing.assert_allclose(raw[0], raw[1], atol=1e-6)
        np.testing.assert_allclose(raw[0, 0, 0], 100 / 255, atol=1e-6)


def test_one_channel_model_gets_grayscale(tmp_path):
    meta = model_meta(20, in_channels=1)
    x = load_image(_save(tmp_path / "a.png", color=(200, 200, 200)), meta)
    assert x.shape == (1, 32, 32)
    np.testing.assert_allclose(x[0, 0, 0], (200 / 255 - np.mean(meta.mean)) / np.mean(meta.std), rtol=1e-5)


def test_imagenet_resize_shorter_side_then_center_crop(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(90, 150, 3), dtype=np.uint8)  # h=90, w=150
    path = tmp_path / "a.png"
    Image.fromarray(pixels).save(path)
    x = load_image(path, IMAGENET_SMALL)
    assert x.shape == (3, 64, 64)
    # Independent reference: shorter side 90 -> 73, long side 150 -> int(73*150/90) = 121, crop 64 centered.
    resized = np.asarray(Image.fromarray(pixels).resize((121, 73), Image.BILINEAR), dtype=np.float32)
    top, left = round((73 - 64) / 2), round((121 - 64) / 2)
    ref = resized[top:top + 64, left:left + 64].transpose(2, 0, 1) / 255.0
    ref = (ref - np.array(IMAGENET_SMALL.mean)[:, None, None]) / np.array(IMAGENET_SMALL.std)[:, None, None]
    np.testing.assert_allclose(x, ref, atol=1e-5)


def test_cifar_model_resizes_other_sizes_to_square(tmp_path):
    x = load_image(_save(tmp_path / "a.jpg", size=(50, 40)), CIFAR)
    assert x.shape == (3, 32, 32)


def test_corrupt_and_truncated_images_are_named(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="bad.jpg"):
        load_image(bad, CIFAR)
    good = _save(tmp_path / "full.jpg", size=(64, 64))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(DataError, match="cut.jpg"):
        load_image(cut, CIFAR)


def test_images_cannot_feed_a_four_channel_model(tmp_path):
    with pytest.raises(DataError, match="4 input channels"):
        load_image(_save(tmp_path / "a.png"), model_meta(20, in_channels=4))


# --- ImageFolderSource ------------------------------------------------------------------------

@pytest.fixture
def class_folder(tmp_path):
    root = tmp_path / "imgs"
    for cls, n, ext in (("zebra", 2, ".JPG"), ("ant", 3, ".png"), ("moth", 2, ".jpeg")):
        for i in range(n):
            _save(root / cls / f"{i}{ext}", color=(i * 40, 0, 0))
    (root / "ant" / "notes.txt").write_text("not an image")
    _save(root / "moth" / "deep" / "x.bmp")
    return root


def test_labels_follow_sorted_class_folders(class_folder):
    src = ImageFolderSource(class_folder, CIFAR)
    assert src.classes == ["ant", "moth", "zebra"]
    assert len(src) == 8
    labels = np.concatenate([b.labels for b in src.batches(3)])
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert labels.dtype == np.int64


def test_batches_have_the_right_shapes_and_the_last_is_short(class_folder):
    sizes = [(b.images.shape, b.images.dtype) for b in ImageFolderSource(class_folder, CIFAR).batches(3)]
    assert [s[0][0] for s in sizes] == [3, 3, 2]
    assert all(s[0][1:] == (3, 32, 32) and s[1] == np.float32 for s in sizes)


def test_linked_class_folders_are_read_like_real_ones(tmp_path, class_folder):
    """A folder of links to class folders kept elsewhere (a subset picked without copying) is read
    whole, as torchvision's ImageFolder reads it (os.walk(followlinks=True)); the links were skipped
    without a word, so calibration saw fewer images than given."""
    picked = tmp_path / "picked"
    picked.mkdir()
    for cls in ("ant", "zebra"):
        (picked / cls).symlink_to(class_folder / cls)
    src = ImageFolderSource(picked, CIFAR)
    assert src.classes == ["ant", "zebra"] and len(src) == 5
    assert src.fingerprint() != ImageFolderSource(class_folder, CIFAR).fingerprint()


def test_a_folder_reached_twice_through_a_link_is_refused(class_folder):
    (class_folder / "moth" / "again").symlink_to(class_folder / "ant")
    with pytest.raises(DataError, match="through a link"):
        ImageFolderSource(class_folder, CIFAR)
    (class_folder / "moth" / "again").unlink()
    (class_folder / "moth" / "loop").symlink_to(class_folder)
    with pytest.raises(DataError, match="read its images twice or loop forever"):
        ImageFolderSource(class_folder, CIFAR)


def test_flat_folder_is_unlabelled(tmp_path):
    for i in range(3):
        _save(tmp_path / f"{i}.png")
    src = ImageFolderSource(tmp_path, CIFAR)
    assert all(b.labels is None for b in src.batches(2))
    assert "unlabelled" in src.description


def test_limit_is_a_deterministic_seeded_subset(class_folder):
    a = ImageFolderSource(class_folder, CIFAR, limit=4, seed=0).files
    b = ImageFolderSource(class_folder, CIFAR, limit=4, seed=0).files
    others = {tuple(ImageFolderSource(class_folder, CIFAR, limit=4, seed=s).files) for s in range(1, 6)}
    assert a == b and len(a) == 4 and a == sorted(a)
    assert others - {tuple(a)}, "different seeds should pick different subsets"


def test_limit_larger_than_folder_fails(class_folder):
    with pytest.raises(DataError, match=r"asked for 20 images, .*imgs holds 8"):
        ImageFolderSource(class_folder, CIFAR, limit=20)


def test_missing_and_empty_folders_fail(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderSource(tmp_path / "nope", CIFAR)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="holds no images"):
        ImageFolderSource(tmp_path / "empty", CIFAR)


def test_streaming_decodes_per_batch(class_folder):
    (class_folder / "zebra" / "1.JPG").write_bytes(b"garbage")  # the last image
    batches = ImageFolderSource(class_folder, CIFAR).batches(4)
    assert next(batches).images.shape[0] == 4  # the bad file is not decoded yet
    with pytest.raises(DataError, match=r"zebra/1\.JPG"):
        next(batches)


def test_fingerprint_is_stable_and_tracks_bytes_and_preprocessing(class_folder):
    fp = ImageFolderSource(class_folder, CIFAR).fingerprint()
    assert fp == ImageFolderSource(class_folder, CIFAR).fingerprint()
    assert len(fp) == 64
    assert fp != ImageFolderSource(class_folder, CIFAR, limit=7).fingerprint()
    assert fp != ImageFolderSource(class_folder, model_meta(20, image_size=16)).fingerprint()
    _save(class_folder / "ant" / "0.png", color=(1, 2, 3))
    assert fp != ImageFolderSource(class_folder, CIFAR).fingerprint()


def test_progress_bar_goes_to_stderr_only_when_asked(class_folder, capsys):
    list(ImageFolderSource(class_folder, CIFAR).batches(4))
    assert capsys.readouterr().err == ""
    list(ImageFolderSource(class_folder, CIFAR).batches(4, progress=True))
    out = capsys.readouterr()
    assert "/8 [" in out.err and out.out == ""


def test_cifar_dev_classes_are_in_canonical_order(cifar_root):
    from tests.conftest import CIFAR_CLASSES

    src = ImageFolderSource(cifar_root / "dev", CIFAR, limit=50)
    assert tuple(src.classes) == CIFAR_CLASSES
    batch = next(src.batches(50))
    names = [f.parent.name for f in src.files]
    assert [CIFAR_CLASSES[i] for i in batch.labels] == names


# --- TensorFileSource -------------------------------------------------------------------------

def _tensors(n=10, meta=CIFAR, seed=1):
    return np.random.default_rng(seed).standard_normal(meta.input_shape(n)).astype(np.float32)


def test_npy_is_memory_mapped_and_yields_float32(tmp_path):
    data = _tensors().astype(np.float64)
    np.save(tmp_path / "x.npy", data)
    src = TensorFileSource(tmp_path / "x.npy", CIFAR)
    assert isinstance(src._images, np.memmap)
    got = np.concatenate([b.images for b in src.batches(4)])
    assert got.dtype == np.float32 and np.allclose(got, data)
    assert all(b.labels is None for b in src.batches(4))


@pytest.mark.parametrize("keys", [("images", "labels"), ("x", "y"), ("only", None)])
def test_npz_keys(tmp_path, keys):
    data, labels = _tensors(), np.arange(10) % 3
    arrays = {keys[0]: data} | ({keys[1]: labels} if keys[1] else {})
    np.savez(tmp_path / "d.npz", **arrays)
    src = TensorFileSource(tmp_path / "d.npz", CIFAR, limit=6, seed=3)
    got = list(src.batches(4))
    idx = src.indices
    np.testing.assert_array_equal(np.concatenate([b.images for b in got]), data[idx])
    if keys[1]:
        np.testing.assert_array_equal(np.concatenate([b.labels for b in got]), labels[idx])
    else:
        assert got[0].labels is None


def test_npz_with_unnamed_arrays_fails(tmp_path):
    np.savez(tmp_path / "d.npz", a=_tensors(), b=_tensors())
    with pytest.raises(DataError, match="name the images 'images'"):
        TensorFileSource(tmp_path / "d.npz", CIFAR)


def test_shape_mismatch_names_both_shapes(tmp_path):
    np.save(tmp_path / "x.npy", _tensors(meta=model_meta(20, image_size=16)))
    with pytest.raises(DataError, match=r"\(10, 3, 16, 16\).*\('N', 3, 32, 32\)"):
        TensorFileSource(tmp_path / "x.npy", CIFAR)


def test_nan_names_the_first_bad_sample(tmp_path):
    data = _tensors()
    data[7, 1, 2, 3] = np.inf
    data[4, 0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", data)
    with pytest.raises(DataError, match="sample 4 holds NaN or Inf"):
        TensorFileSource(tmp_path / "x.npy", CIFAR)


@pytest.mark.parametrize("case", ["ints", "labels", "pickle", "garbage", "missing"])
def test_bad_tensor_files(tmp_path, case):
    path = tmp_path / ("x.npz" if case == "labels" else "x.npy")
    if case == "ints":
        np.save(path, np.zeros(CIFAR.input_shape(2), dtype=np.uint8))
    elif case == "labels":
        np.savez(path, images=_tensors(), labels=np.zeros(3, dtype=np.int64))
    elif case == "pickle":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif case == "garbage":
        path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=str(path.name)):
        TensorFileSource(path, CIFAR)


# --- SyntheticSource and open_source ----------------------------------------------------------

def test_synthetic_is_deterministic_and_batch_size_independent():
    a = np.concatenate([b.images for b in SyntheticSource(CIFAR, 7, seed=2).batches(3)])
    b = np.concatenate([b.images for b in SyntheticSource(CIFAR, 7, seed=2).batches(7)])
    c = np.concatenate([b.images for b in SyntheticSource(CIFAR, 7, seed=3).batches(7)])
    assert a.shape == (7, 3, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.8 < a.std() < 1.2
    assert SyntheticSource(CIFAR, 7, seed=2).fingerprint() != SyntheticSource(CIFAR, 7, seed=3).fingerprint()


def test_open_source_dispatches_by_path(tmp_path, class_folder):
    np.save(tmp_path / "x.npy", _tensors())
    assert isinstance(open_source(None, CIFAR, limit=5), SyntheticSource)
    assert len(open_source(None, CIFAR, limit=5)) == 5
    assert isinstance(open_source(class_folder, CIFAR), ImageFolderSource)
    assert isinstance(open_source(tmp_path / "x.npy", CIFAR), TensorFileSource)
    with pytest.raises(DataError, match="does not exist"):
        open_source(tmp_path / "missing", CIFAR)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="neither a folder"):
        open_source(tmp_path / "a.txt", CIFAR)


def test_bad_batch_size():
    with pytest.raises(DataError, match="batch size"):
        next(SyntheticSource(CIFAR, 3).batches(0))
