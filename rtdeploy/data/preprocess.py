"""One image file -> one normalized float32 CHW array, as the model's metadata asks.

ImageNet models (``meta.resize`` set): resize the shorter side to ``meta.resize`` (bilinear), then
center-crop ``meta.image_size`` x ``meta.image_size`` -- torchvision's evaluation transform.
CIFAR models (``meta.resize`` is None): resize straight to ``image_size`` x ``image_size`` (a no-op
for 32x32 CIFAR images). Then scale to [0, 1] and normalize with ``meta.mean`` / ``meta.std``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rtdeploy.errors import DataError, first_line
from rtdeploy.models.metadata import ModelMeta

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def check_image_channels(meta: ModelMeta) -> None:
    """Images can feed 1-channel (grayscale) or 3-channel (RGB) models only.

    Raises:
        DataError: ``meta.in_channels`` is neither 1 nor 3.
    """
    if meta.in_channels not in (1, 3):
        raise DataError(
            f"{meta.name} takes {meta.in_channels} input channels; images give 1 (grayscale) or 3 (RGB) — "
            "pass a preprocessed .npy/.npz tensor file of shape (N, "
            f"{meta.in_channels}, {meta.image_size}, {meta.image_size}) instead"
        )


def load_image(path: str | os.PathLike, meta: ModelMeta) -> np.ndarray:
    """Decode, resize, crop and normalize one image for ``meta``'s model.

    Grayscale, palette and RGBA images are converted to RGB (or to grayscale for a 1-channel model).

    Args:
        path: a JPEG, PNG or BMP file.
        meta: the model's metadata (image_size, resize, mean, std, in_channels).

    Returns:
        float32 array of shape ``(in_channels, image_size, image_size)``.

    Raises:
        DataError: the file cannot be read or decoded (the message names it), or the model does not
            take 1 or 3 channels.
    """
    from PIL import Image

    check_image_channels(meta)
    p = Path(path)
    try:
        with Image.open(p) as img:
            img.load()  # decode now, so a truncated file fails here and not later
            img = _to_8bit(img, p).convert("L" if meta.in_channels == 1 else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        reason = first_line(e, 120)
        raise DataError(f"cannot read image {p}: {reason}; remove or replace this file") from e
    img = _resize_and_crop(img, meta)
    return normalize(np.asarray(img, dtype=np.float32), meta)


# Pillow modes of 16-bit (and 32-bit integer) grayscale images, e.g. a 16-bit PNG. Pillow's convert()
# to "L"/"RGB" clips these to 255 instead of scaling, so nearly every pixel would turn white.
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _to_8bit(img, path: Path):
    """16-bit grayscale -> 8-bit by scaling 0..65535 to 0..255 (rounded); other modes unchanged.

    Raises:
        DataError: a floating-point image (mode F), whose value range is unknown, or a 32-bit
            integer image with values outside 0..65535.
    """
    from PIL import Image

    if img.mode == "F":
        raise DataError(f"image {path} holds floating-point pixels (mode F) of unknown range; save it as 8- or 16-bit PNG")
    if img.mode not in _WIDE_GRAY_MODES:
        return img
    pixels = np.asarray(img, dtype=np.float64)
    if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise DataError(f"image {path} holds 32-bit pixel values outside 0..65535; save it as 8- or 16-bit PNG")
    return Image.fromarray(np.round(pixels * (255.0 / 65535.0)).astype(np.uint8), "L")


def _resize_and_crop(img, meta: ModelMeta):
    from PIL import Image

    size = meta.image_size
    if meta.resize is None:
        return img if img.size == (size, size) else img.resize((size, size), Image.BILINEAR)
    w, h = img.size
    short, long_ = (w, h) if w <= h else (h, w)
    new_long = int(meta.resize * long_ / short)  # torchvision truncates the long side
    new_w, new_h = (meta.resize, new_long) if w <= h else (new_long, meta.resize)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.BILINEAR)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def normalize(pixels: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """HWC (or HW) pixel values in 0..255 -> normalized float32 CHW.

    A 1-channel model with 3-value mean/std uses their averages.
    """
    chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    mean, std = _channel_stats(meta, chw.shape[0])
    out = (chw.astype(np.float32) / np.float32(255.0) - mean) / std
    return np.ascontiguousarray(out, dtype=np.float32)


def _channel_stats(meta: ModelMeta, channels: int) -> tuple[np.ndarray, np.ndarray]:
    mean = np.asarray(meta.mean, dtype=np.float32)
    std = np.asarray(meta.std, dtype=np.float32)
    if mean.size != channels:
        mean, std = np.full(channels, mean.mean(), np.float32), np.full(channels, std.mean(), np.float32)
    return mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
