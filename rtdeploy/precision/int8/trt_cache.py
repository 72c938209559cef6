"""TensorRT's calibration cache text format: write ours, read anyone's.

The format TensorRT's ``IInt8EntropyCalibrator2`` reads and writes (implicit INT8, TensorRT <= 10):

    TRT-8601-EntropyCalibration2
    input: 3c0a3d71
    /Relu_output_0: 3d1b2c4e

The first line names the TensorRT version (``major*1000 + minor*100 + patch`` for 8.x) and the
algorithm; then one line per tensor: its name, a colon, and the 8 hex digits of the scale
(``amax / 127``) as a big-endian IEEE float32. The header always names ``EntropyCalibration2``
so that a user's entropy calibrator accepts the file; the scales inside are those of the method
chosen here (recorded in the INT8 model's manifest).
"""

from __future__ import annotations

import math
import os
import re
import struct
from pathlib import Path

from rtdeploy.files import not_a_file
from rtdeploy.errors import PrecisionError

DEFAULT_TRT_VERSION = "8601"
ALGORITHM = "EntropyCalibration2"
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")


def float_to_hex(value: float) -> str:
    """The 8 hex digits of ``value`` as a big-endian float32."""
    return struct.pack(">f", value).hex()


def hex_to_float(text: str) -> float:
    """Inverse of :func:`float_to_hex`.

    Raises:
        ValueError: not 8 hex digits.
    """
    if len(text) != 8:
        raise ValueError(f"{text!r} is not 8 hex digits")
    return struct.unpack(">f", bytes.fromhex(text))[0]


def format_cache(scales: dict[str, float], trt_version: str = DEFAULT_TRT_VERSION) -> str:
    """The cache text for ``scales`` (tensor name -> scale), in the given order."""
    if not str(trt_version).isdigit():
        raise PrecisionError(f"TensorRT version {trt_version!r} for the cache header must be digits, e.g. 8601 for 8.6.1")
    lines = [f"TRT-{trt_version}-{ALGORITHM}"]
    lines += [f"{name}: {float_to_hex(scale)}" for name, scale in scales.items()]
    return "\n".join(lines) + "\n"


def write_cache(path: str | os.PathLike, scales: dict[str, float], trt_version: str = DEFAULT_TRT_VERSION) -> Path:
    """Write a TensorRT calibration cache atomically."""
    from rtdeploy.files import write_text_atomic

    return write_text_atomic(path, format_cache(scales, trt_version))


def parse_cache(text: str, source: str = "calibration cache") -> dict[str, float]:
    """Scales by tensor name from cache text.

    Raises:
        PrecisionError: a missing/odd header, a malformed line, or a scale that is not positive and finite.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or not _HEADER.match(lines[0]):
        first = lines[0][:60] if lines else "(empty)"
        raise PrecisionError(f"{source} does not start with a TensorRT header like TRT-8601-EntropyCalibration2 (found {first!r}); give a TensorRT calibration cache")
    scales = {}
    for number, line in enumerate(lines[1:], start=2):
        name, sep, value = line.rpartition(":")
        try:
            scale = hex_to_float(value.strip()) if sep else math.nan
        except ValueError:
            scale = math.nan
        if not name or not (scale > 0 and math.isfinite(scale)):
            raise PrecisionError(f"{source} line {number} is not 'tensor: <8 hex digits of a positive float32>' ({line[:60]!r}); regenerate the cache")
        scales[name.strip()] = scale
    return scales


def read_cache(path: str | os.PathLike) -> dict[str, float]:
    """Scales by tensor name from a cache file.

    Raises:
        PrecisionError: missing, unreadable or malformed file.
    """
    p = Path(path)
    if not p.is_file():
        raise PrecisionError(f"calibration cache {p} {not_a_file(p)}; give a file written by `rtdeploy quantize --trt-cache` or by TensorRT")
    try:
        text = p.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise PrecisionError(f"cannot read calibration cache {p} as text ({e.__class__.__name__}); give a TensorRT calibration cache") from e
    return parse_cache(text, source=f"calibration cache {p}")


def scales_for(cache: dict[str, float], needed: list[str], source: str) -> dict[str, float]:
    """The scales of ``needed`` tensors from a cache.

    Raises:
        PrecisionError: the cache lacks some of them (it was made for another model); names them.
    """
    missing = [t for t in needed if t not in cache]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise PrecisionError(
            f"{source} has no scale for {len(missing)} of the {len(needed)} tensors this model quantizes ({shown}); "
            "it was made for another model — calibrate this one instead (drop --from-trt-cache)"
        )
    return {t: cache[t] for t in needed}
