"""The FP16 branch of ``quantize``: measure activation ranges, guard overflows, convert, write."""

from __future__ import annotations

import logging
from pathlib import Path

from rtdeploy.errors import PrecisionError, first_line

log = logging.getLogger(__name__)


def run_fp16(cfg, parent, out: Path):
    """Make the FP16 model of ``parent`` as ``cfg`` asks."""
    import numpy as np
    import onnx

    from rtdeploy.manifests import new_manifest
    from rtdeploy.precision.calibration_data import SplitSource, calibration_source
    from rtdeploy.precision.reuse_record import quantize_derivation
    from rtdeploy.precision.fp16 import DEFAULT_SAFETY, FP16_MAX, convert_fp16, float_tensors, guard_nodes
    from rtdeploy.precision.stats import gather_stats
    from rtdeploy.precision.artifact import QuantizeResult, Timer, base_fields, op_inventory, write_model

    timer = Timer()
    meta = parent.manifest.model
    split = SplitSource(calibration_source(cfg, meta))
    tensors = float_tensors(parent.model)
    timer.lap("setup")
    stats, cache_state = gather_stats(parent, tensors, split, None, cfg.stats_cache, cfg.progress)
    amax = {t: s.amax for t, s in stats.items()}
    bad = [t for t, a in amax.items() if not np.isfinite(a)]
    if bad:
        raise PrecisionError(f"tensor {bad[0]} reached NaN/Inf on the calibration data in FP32 already; check the inputs and the model")
    timer.lap("collect")
    keep = guard_nodes(parent.model, amax, DEFAULT_SAFETY)
    model16, report = convert_fp16(parent.model, keep, fp16_io=cfg.fp16_io)
    try:
        onnx.checker.check_model(model16)
    except onnx.checker.ValidationError as e:
        raise PrecisionError(f"the FP16 model failed onnx.checker ({first_line(e, 160)}); this is a bug — please report it") from e
    timer.lap("convert")
    fp16 = {
        "io": report.io,
        "limit": FP16_MAX / DEFAULT_SAFETY,
        "safety_factor": DEFAULT_SAFETY,
        "max_abs_activation": max(amax.values(), default=0.0),
        "kept_fp32": [{"node": n, "reason": r} for n, r in keep.items()],
        "casts": report.casts,
        "weights_clamped": report.weights_clamped,
        "weights_flushed_to_zero": report.weights_flushed,
        "seconds": dict(timer.seconds),
    }

    calibration = split.record(cfg.seed, cache_state)

    def make_manifest(tmp: Path) -> dict:
        return new_manifest("onnx-fp16", tmp, precision="fp16", **base_fields(parent), calibration=calibration,
                            fp16=fp16, ops=op_inventory(model16),
                            derivation=quantize_derivation(cfg, parent.sha256, split.source.fingerprint()))

    manifest = write_model(model16, out, make_manifest)
    if keep:
        log.warning("kept %d node(s) in FP32 to avoid FP16 overflow: %s", len(keep), ", ".join(keep))
    summary = {
        "output": str(out), "precision": "fp16", "io": report.io, "images": split.stats_count,
        "max_abs_activation": fp16["max_abs_activation"], "kept_fp32": list(keep), "casts": report.casts,
        "stats_cache": cache_state, "seconds": fp16["seconds"],
    }
    return QuantizeResult(out, manifest, summary)
