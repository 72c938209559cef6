"""The INT8 branch of ``quantize`` for ``--target onnxruntime-cpu``: statistics -> thresholds ->
the Q/DQ form onnxruntime's CPU kernels fuse (:mod:`rtdeploy.precision.int8.cpu_target`) + manifest.

Same calibration data, statistics cache and calibrators as the TensorRT target; only the placement
and the integer types differ.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rtdeploy.errors import PrecisionError, first_line
from rtdeploy.precision.stats import gather_stats

log = logging.getLogger(__name__)

TARGET = "onnxruntime-cpu"


def run_int8_cpu(cfg, parent, out: Path):
    """Make the CPU-target INT8 model of ``parent`` as ``cfg`` asks."""
    from rtdeploy.precision.calibration_data import SplitSource, calibration_source
    from rtdeploy.precision.graph import MIN_QDQ_OPSET, opset_of
    from rtdeploy.precision.calibrators import get_calibrator
    from rtdeploy.precision.int8.cpu_target import plan_cpu
    from rtdeploy.precision.calibrators import calibration_inputs
    from rtdeploy.precision.artifact import Timer

    timer = Timer()
    opset = opset_of(parent.model)
    if opset < MIN_QDQ_OPSET:
        raise PrecisionError(f"{parent.path} uses opset {opset}; per-channel Q/DQ needs opset >= {MIN_QDQ_OPSET} — re-export with --opset 17")
    plan = plan_cpu(parent.model)
    if not plan.weighted:
        raise PrecisionError(f"{parent.path} has no Conv/Gemm/MatMul with constant weights to quantize")
    meta = parent.manifest.model
    split = SplitSource(calibration_source(cfg, meta))
    timer.lap("setup")
    calibrator = get_calibrator(cfg.method)
    stats, cache_state = gather_stats(parent, plan.observed(), split, calibrator, cfg.stats_cache, cfg.progress)
    timer.lap("collect")
    thresholds = calibrator.thresholds(stats, calibration_inputs(cfg, parent, plan, split, TARGET))
    timer.lap("thresholds")
    calibration = split.record(cfg.seed, cache_state)
    return _write(cfg, parent, plan, thresholds, calibration, out, timer, split.source.fingerprint())


def _write(cfg, parent, plan, thresholds: dict[str, float], calibration: dict, out: Path, timer, calib_fingerprint: str):
    import onnx

    from rtdeploy.manifests import new_manifest
    from rtdeploy.precision.reuse_record import quantize_derivation
    from rtdeploy.precision.int8.cpu_target import activation_qparams, insert_cpu_qdq
    from rtdeploy.precision.int8.qdq import qdq_counts
    from rtdeploy.precision.artifact import QuantizeResult, base_fields, op_inventory, write_model

    qmodel = insert_cpu_qdq(parent.model, plan, thresholds)
    try:
        onnx.checker.check_model(qmodel)
    except onnx.checker.ValidationError as e:
        raise PrecisionError(f"the Q/DQ model failed onnx.checker ({first_line(e, 160)}); this is a bug — please report it") from e
    timer.lap("write")
    qparams = {t.tensor: activation_qparams(float(thresholds[t.observe]), t.non_negative) for t in plan.tensors}
    quantization = {
        "target": TARGET,
        "high_precision": "fp32",
        "method": cfg.method,
        "percentile": cfg.percentile if cfg.method == "percentile" else None,
        "weights": "int8 symmetric, per output channel (max), in -63..63 (no int16 saturation in AVX2 u8s8 kernels)",
        "activations": "uint8 per tensor: zero point 0 for non-negative tensors, 128 otherwise",
        "biases": "int32, scale = input scale x weight scale",
        "placement": "onnxruntime-cpu: every input of Conv/Gemm/MatMul, Add, Global/AveragePool; pass-through ops share their input's scale",
        "layers": len(plan.layers),
        "quantized_layers": len(plan.layers),
        "kept_fp": [],
        "qdq_nodes": qdq_counts(qmodel),
        "scales": {t: s for t, (s, _) in qparams.items()},
        "zero_points": {t: z for t, (_, z) in qparams.items()},
        "seconds": dict(timer.seconds),
    }

    def make_manifest(tmp: Path) -> dict:
        return new_manifest("onnx-int8", tmp, precision="int8", **base_fields(parent), calibration=calibration,
                            quantization=quantization, ops=op_inventory(qmodel),
                            derivation=quantize_derivation(cfg, parent.sha256, calib_fingerprint))

    manifest = write_model(qmodel, out, make_manifest)
    log.info("wrote %s (%d layers int8, onnxruntime CPU form)", out, len(plan.layers))
    report = {
        "output": str(out), "precision": "int8", "target": TARGET, "high_precision": "fp32", "method": cfg.method,
        "images": calibration["images"], "held_out": 0, "stats_cache": calibration["stats_cache"],
        "layers": quantization["layers"], "quantized_layers": quantization["quantized_layers"], "kept_fp": [],
        "qdq_nodes": quantization["qdq_nodes"], "seconds": quantization["seconds"],
    }
    return QuantizeResult(out, manifest, report)
