"""What decides a precision model's bytes: the ``derivation`` record its manifest carries.

The quantize stage writes it; :mod:`rtdeploy.make_or_reuse` computes it again before deciding whether an
existing ``X.int8.onnx`` can be reused. Both go through :func:`quantize_derivation`, so the two
can never disagree about what counts.
"""

from __future__ import annotations

from pathlib import Path

from rtdeploy.files import sha256_file
from rtdeploy.lineage import derivation, parent_inputs
from rtdeploy.options import output_fields


def uses_calibration_images(cfg) -> bool:
    """True when the stage reads calibration images (FP16 for its overflow guard; INT8 unless it
    takes its scales from a TensorRT cache with neither a fallback search nor adaptive rounding).
    The INT8 stage decides by this function too, so the reuse record cannot miss an input."""
    if cfg.fp16:
        return True
    return (cfg.from_trt_cache is None or cfg.keep_fp > 0 or cfg.target_agreement is not None
            or cfg.weights not in ("nearest", "auto"))  # auto is nearest with a TensorRT cache


def quantize_derivation(cfg, parent_sha256: str, calibration_fingerprint: str | None) -> dict:
    """The derivation record of the model ``cfg`` makes from a parent with ``parent_sha256``: the
    options declared to change the output (paths are not: the content of the calibration data and
    of a read TensorRT cache is recorded as an input instead).

    Args:
        cfg: the :class:`rtdeploy.precision.quantize.QuantizeConfig`.
        parent_sha256: the FP32 parent's sha256 (its manifest's model record joins it: :func:`parent_inputs`).
        calibration_fingerprint: the calibration source's content fingerprint (None when the
            stage reads no images: see :func:`uses_calibration_images`).
    """
    inputs = parent_inputs(cfg.model, parent_sha256)
    if calibration_fingerprint is not None:
        inputs["calibration"] = calibration_fingerprint
    if cfg.from_trt_cache is not None:
        inputs["trt_cache"] = sha256_file(Path(cfg.from_trt_cache))
    return derivation("quantize", output_fields(cfg), inputs)


def calibration_fingerprint(cfg, meta) -> str | None:
    """The content fingerprint of the calibration images ``cfg`` would read (None: it reads none).

    Raises:
        DataError: the calibration data cannot be opened.
    """
    if not uses_calibration_images(cfg):
        return None
    from rtdeploy.precision.calibration_data import calibration_source

    return calibration_source(cfg, meta).fingerprint()
